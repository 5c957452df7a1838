"""The HTTP API: read the request, call the domain, answer JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from prometheus_client import CONTENT_TYPE_LATEST
from redis import Redis
from rq import Worker

from app.batches import Batches, book_ids, progress
from app.errors import error_response
from app.export import FORMATS, export_lines
from app.jobs import BookJobs, BookState
from app.links import BookId, Refusal, canonical_url, job_id, parse_link
from app.metrics import Metrics
from app.record_cache import RecordCache
from app.store import BookStore, UnsafeRecord

bp = Blueprint("api", __name__)

# GET /getBookInfo: HTTP status for each state of a book without a record.
STATE_HTTP_STATUS = {"queued": 202, "running": 202, "retrying": 202,
                     "unknown": 404, "not_found": 404, "blocked": 502, "failed": 502}
STATE_MESSAGES = {
    "queued": "the book is queued for parsing",
    "running": "the book is being fetched and parsed",
    "retrying": "the last attempt failed; the book will be tried again",
    "unknown": "this book was never submitted; POST its link to /parseGoodreadsLinks",
    "not_found": "Goodreads has no book with this id",
    "blocked": "Goodreads refused to serve the page; send the link again later",
    "failed": "the book could not be fetched or parsed; send the link again later",
}
BOOK_OUTCOMES = ("queued", "already_queued", "stored", "not_found")
ECHOED_LINK_LENGTH = 300
OPENAPI_DOCUMENT = (Path(__file__).parent / "openapi.json").read_bytes()


def _jobs() -> BookJobs:
    return current_app.extensions["book_jobs"]


def _batches() -> Batches:
    return current_app.extensions["batches"]


def _record_cache() -> RecordCache:
    return current_app.extensions["record_cache"]


@bp.post("/parseGoodreadsLinks")
def parse_goodreads_links():
    """Validate a JSON array of links and queue one job per book that needs one."""
    settings = _jobs().settings
    refresh = _flag("refresh")
    if isinstance(refresh, tuple):
        return refresh
    try:
        links = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        return error_response(400, "invalid_json", "the body must be a JSON array of Goodreads book links")
    if not isinstance(links, list):
        return error_response(400, "not_an_array", "the body must be a JSON array of Goodreads book links")
    if len(links) > settings.max_links_per_request:
        return error_response(413, "too_many_links",
                              f"at most {settings.max_links_per_request} links per request; split the list")
    if not links:
        return error_response(400, "no_links", "the array holds no links")

    parsed = [parse_link(link) for link in links]
    accepted = [result for result in parsed if not isinstance(result, Refusal)]
    outcomes = _jobs().enqueue_books(accepted, refresh=refresh) if accepted else {}
    results = [_link_result(link, result, outcomes) for link, result in zip(links, parsed, strict=True)]
    counts = {"links": len(links), "books": len(outcomes),
              **{name: 0 for name in BOOK_OUTCOMES}, "rejected": len(links) - len(accepted)}
    for outcome in outcomes.values():
        counts[outcome] += 1
    if not outcomes:
        return error_response(400, "no_valid_links", "none of the links is a Goodreads book link",
                              counts=counts, results=results)
    batch_id = _batches().create([(r["link"], r.get("book_id"), r.get("reason")) for r in results])
    scheduled = counts["queued"] + counts["already_queued"]
    message = f"{scheduled} {'book is' if scheduled == 1 else 'books are'} scheduled for info parsing."
    return jsonify(message=message, batch_id=batch_id, counts=counts, results=results), 202


@bp.get("/getBookInfo")
def get_book_info():
    """The stored record of a book, or where the book stands."""
    urls = request.args.getlist("url")
    if len(urls) != 1:
        reason = "give the book's link as ?url=<link>" if not urls else "give exactly one url parameter"
        return error_response(400, "missing_url" if not urls else "repeated_url", reason)
    book_id = parse_link(urls[0])
    if isinstance(book_id, Refusal):
        return error_response(400, "invalid_link", book_id.reason)
    jobs = _jobs()
    try:
        body = _record_cache().fetch(book_id, lambda: _record_body(jobs.store, book_id))
    except UnsafeRecord as error:
        current_app.logger.warning("refused the stored record of book %s: %s", book_id, error)
        return _state_response(book_id, BookState(
            "failed", reason="the stored record is not plain data and was refused; "
                             "send the link again with ?refresh=true"))
    if body is not None:
        return Response(body, 200, mimetype="application/json")
    return _state_response(book_id, jobs.state(book_id))


@bp.get("/batches/<batch_id>")
def batch_progress(batch_id: str):
    """Each link of a batch with its book's status, counts per status, and whether it is finished."""
    batch = _batches().load(batch_id)
    if batch is None:
        return _unknown_batch()
    return jsonify(progress(batch_id, batch, _jobs())), 200


@bp.get("/batches/<batch_id>/books")
def batch_books(batch_id: str):
    """The stored records of a batch's books, streamed as JSON Lines or CSV."""
    export_format = _export_format()
    if isinstance(export_format, tuple):
        return export_format
    batch = _batches().load(batch_id)
    if batch is None:
        return _unknown_batch()
    records = _jobs().store.iter_records(book_ids(batch))
    return _export(records, export_format, f"batch-{batch_id}")


@bp.get("/books")
def all_books():
    """Every stored record, streamed as JSON Lines or CSV (in no particular order)."""
    export_format = _export_format()
    if isinstance(export_format, tuple):
        return export_format
    store = _jobs().store
    return _export(store.iter_records(store.stored_book_ids()), export_format, "books")


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of this API."""
    return OPENAPI_DOCUMENT, 200, {"Content-Type": "application/json"}


@bp.get("/metrics")
def metrics():
    """Queue, job, attempt, origin-status and fetch-latency metrics in the Prometheus text format."""
    jobs = _jobs()
    body = Metrics(jobs.redis, jobs.settings.key_prefix).render(jobs.queue)
    return body, 200, {"Content-Type": CONTENT_TYPE_LATEST}


@bp.get("/healthz")
def healthz():
    """The process is up (no dependency is checked)."""
    return jsonify(status="ok"), 200


@bp.get("/readyz")
def readyz():
    """Redis answers; how many workers serve the queue and how deep it is."""
    jobs = _jobs()
    redis: Redis = jobs.redis
    redis.ping()
    workers = Worker.count(connection=redis, queue=jobs.queue)
    return jsonify(status="ready", redis="ok", workers=workers, queue=jobs.queue.name,
                   queue_depth=jobs.queue.count), 200


def _link_result(link: object, result: BookId | Refusal, outcomes: dict[BookId, str]) -> dict:
    echoed = link[:ECHOED_LINK_LENGTH] if isinstance(link, str) else None
    if isinstance(result, Refusal):
        return {"link": echoed, "outcome": "rejected", "reason": result.reason}
    return {"link": echoed, "book_id": result, "url": canonical_url(result), "job_id": job_id(result),
            "outcome": outcomes[result]}


def _record_body(store: BookStore, book_id: BookId) -> bytes | None:
    record = store.load_record(book_id)
    return None if record is None else json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _state_response(book_id: BookId, state: BookState):
    body = {"status": state.status, "book_id": book_id, "url": canonical_url(book_id),
            "job_id": job_id(book_id), "message": STATE_MESSAGES[state.status]}
    if state.reason:
        body["reason"] = state.reason
    if state.attempts:
        body["attempts"] = state.attempts
    if state.last_attempt_at:
        body["last_attempt_at"] = datetime.fromtimestamp(state.last_attempt_at, tz=UTC).isoformat()
    return jsonify(body), STATE_HTTP_STATUS[state.status]


def _unknown_batch():
    return error_response(404, "unknown_batch", "no such batch (batches expire after BATCH_TTL)")


def _export_format() -> str | tuple:
    export_format = request.args.get("format", "jsonl")
    if export_format not in FORMATS:
        return error_response(400, "invalid_format", "?format= takes jsonl or csv")
    return export_format


def _export(records, export_format: str, name: str) -> Response:
    return Response(stream_with_context(export_lines(records, export_format)), mimetype=FORMATS[export_format],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{export_format}"'})


def _flag(name: str) -> bool | tuple:
    """A true/false query parameter; an error response when it is neither."""
    value = request.args.get(name, "false").strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    return error_response(400, f"invalid_{name}", f"?{name}= takes true or false")
