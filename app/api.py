"""The HTTP API: read the request, call the domain, answer JSON."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import wraps
from itertools import islice
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote_plus, urlsplit

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import ApiError
from app.limits import BatchSpace, Gate, LargePostTurns, PostBudget, QueueShare, client_address
from app.metrics import render_metrics
from app.record_cache import RecordCache
from books.batches import Batch, Batches, NewBatch, all_book_ids, counts_from_outcomes, page
from books.callbacks import refusal, wait_for_batch
from books.counters import Counters
from books.export import FORMATS, export_lines, in_pieces
from books.hints import Hints
from books.imports import NO_HINTS, Submitted, UnreadableBody, export_rows, link_lines
from books.links import BookId, Refusal, canonical_url, parse_link
from books.origin import OriginHealth, iso
from books.queue import BookQueue, NotReplicated, QueueFull, job_id
from books.record import StoredRecord
from books.refresh import index_earlier_records
from books.status import BookState, BookStatus, Outcome
from books.store import BookStore, UnsafeRecord

bp = Blueprint("api", __name__)
P = ParamSpec("P")
R = TypeVar("R")

# GET /getBookInfo: HTTP status and message for each state of a book without a record.
STATUS_HTTP = {
    BookStatus.QUEUED: 202,
    BookStatus.RUNNING: 202,
    BookStatus.RETRYING: 202,
    BookStatus.PAUSED: 202,
    BookStatus.UNKNOWN: 404,
    BookStatus.NOT_FOUND: 404,
    BookStatus.BLOCKED: 502,
    BookStatus.FAILED: 502,
}
STATUS_MESSAGES = {
    BookStatus.QUEUED: "the book is queued for parsing",
    BookStatus.RUNNING: "the book is being fetched and parsed",
    BookStatus.RETRYING: "the last attempt failed; the book will be tried again",
    BookStatus.PAUSED: "Goodreads is not serving pages to this service; the book waits, its attempts unspent",
    BookStatus.UNKNOWN: "this book was never submitted; POST its link to /parseGoodreadsLinks",
    BookStatus.NOT_FOUND: "Goodreads has no book with this id",
    BookStatus.BLOCKED: "Goodreads refused to serve the page; send the link again later",
    BookStatus.FAILED: "the book could not be fetched or parsed; send the link again later",
}
BOOK_OUTCOMES = (Outcome.QUEUED, Outcome.ALREADY_QUEUED, Outcome.STORED, Outcome.NOT_FOUND)
ECHOED_LINK_LENGTH = 300
# Seconds an export refused for MAX_EXPORTS is told to wait.
EXPORT_RETRY_AFTER = 10
# The request bodies read a link per line, or a row per book, by their content type; JSON is
# read from these types and any "+json" one.
LINE_READERS = {"text/plain": link_lines, "text/csv": export_rows}
JSON_TYPES = frozenset({"", "application/json", "application/x-www-form-urlencoded"})
OPENAPI_DOCUMENT = (Path(__file__).parent / "openapi.json").read_bytes()


def _queue() -> BookQueue:
    return current_app.extensions["book_queue"]


def _batches() -> Batches:
    return current_app.extensions["batches"]


def _hints() -> Hints:
    return current_app.extensions["hints"]


def _record_cache() -> RecordCache:
    return current_app.extensions["record_cache"]


def guarded_write(view: Callable[P, R]) -> Callable[P, R]:
    """For every route that takes POST: ``guard_writes`` before the view. A decorator, not a
    ``before_request`` hook, so that the reads (lookups above all) do not pay for a hook that
    would only let them pass."""

    @wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        guard_writes()
        return view(*args, **kwargs)

    return guarded


def guard_writes() -> None:
    """A POST needs one of the API tokens when ``API_TOKENS`` is set, and spends one of the
    client's ``POST_BUDGET`` requests; reads are free."""
    tokens = _queue().settings.api_tokens
    if tokens and not _bearer_token_matches(tokens):
        raise ApiError(
            401,
            "unauthorized",
            "this service takes links only with an API token: send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="goodreads-book-info"'},
        )
    budget: PostBudget = current_app.extensions["post_budget"]
    wait = budget.spend(client_address())
    if wait:
        raise ApiError(
            429,
            "too_many_requests",
            f"at most {budget.limit} POSTs per {budget.window} s from one client (POST_BUDGET); try again in {wait} s",
            {"Retry-After": str(wait)},
        )


def _bearer_token_matches(tokens: tuple[str, ...]) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    given_bytes = given.strip().encode()
    # Every token is compared, in constant time each, so the timing tells nothing.
    matches = [hmac.compare_digest(given_bytes, token.encode()) for token in tokens]
    return any(matches)


def _request_body() -> bytes:
    """The whole body, or 413 past ``MAX_REQUEST_BYTES`` however it is sent. A body of a
    declared length is read as declared; for a chunked one, werkzeug stops reading at the
    limit without a word, and the JSON would merely look broken, so one byte more is read
    from the server's stream (which ends at the chunked body's end) to tell."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None:
        if request.content_length > limit:
            raise RequestEntityTooLarge()
        return request.get_data(cache=False)
    body = request.input_stream.read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


@bp.post("/parseGoodreadsLinks")
@guarded_write
def parse_goodreads_links() -> tuple[Response, int]:
    """Validate links (a JSON array, lines of text, or a Goodreads library export) and queue one
    job per book that needs one; an export's titles, authors and ISBNs are kept as hints."""
    queue = _queue()
    refresh = _flag("refresh")
    callback_url = _callback_url(queue)
    client = client_address()
    large_posts: LargePostTurns = current_app.extensions["large_posts"]
    with large_posts.turn(client, request.content_length):  # a large body read in the client's turn
        submitted = _submitted_links(queue.settings.max_links_per_request)
    accepted = [item.book for item in submitted if not isinstance(item.book, Refusal)]
    echoes = [_echo(item.link) for item in submitted]
    new_batch = NewBatch.of(
        [
            (echo, None, item.book.reason) if isinstance(item.book, Refusal) else (echo, item.book, None)
            for echo, item in zip(echoes, submitted, strict=True)
        ]
    )
    if accepted:
        _check_client_share(client, len(new_batch.books))
        _check_batch_space(client, new_batch.size)
    hints = {
        item.book: item.hints for item in submitted if item.hints != NO_HINTS and not isinstance(item.book, Refusal)
    }
    if hints:  # before the jobs: a worker that takes one at once finds them
        _hints().save(hints)
    enqueued_at = time.time()
    try:
        outcomes = queue.enqueue_books(accepted, refresh=refresh) if accepted else {}
    except QueueFull as full:
        raise ApiError(
            503,
            "queue_full",
            f"{full.queued} books are waiting, and at most {full.bound} may (MAX_QUEUED_BOOKS): "
            f"the {full.adding} books of this request were not queued; send them again later",
            {"Retry-After": "60"},
        ) from None
    results = [_link_result(item, echo, outcomes) for item, echo in zip(submitted, echoes, strict=True)]
    counts: dict[str, int] = {
        "links": len(submitted),
        "books": len(outcomes),
        **dict.fromkeys(BOOK_OUTCOMES, 0),
        Outcome.REJECTED: len(submitted) - len(accepted),
    }
    for outcome in outcomes.values():
        counts[outcome] += 1
    if not outcomes:
        raise ApiError(
            400, "no_valid_links", "none of the links is a Goodreads book link", counts=counts, results=results
        )
    queued = [book_id for book_id, outcome in outcomes.items() if outcome == Outcome.QUEUED]
    current_app.extensions["queue_share"].add(client, queued)
    batch_id = _batches().create(
        new_batch, counts_from_outcomes(outcomes.values(), counts[Outcome.REJECTED], enqueued_at)
    )
    current_app.extensions["batch_space"].charge(client, new_batch.size)
    if callback_url:
        pending = [
            book_id for book_id, outcome in outcomes.items() if outcome in (Outcome.QUEUED, Outcome.ALREADY_QUEUED)
        ]
        batch_url = url_for("api.batch_progress", batch_id=batch_id, _external=True)
        wait_for_batch(queue.redis, queue.settings, batch_id, callback_url, batch_url, pending)
    try:
        queue.confirm_replicated()
    except NotReplicated:
        raise ApiError(
            503,
            "not_replicated",
            f"Redis's replicas did not confirm the books in time (REDIS_MIN_REPLICAS); send them again "
            f"(books already queued are not queued twice): batch {batch_id}",
            {"Retry-After": "5"},
        ) from None
    scheduled = counts[Outcome.QUEUED] + counts[Outcome.ALREADY_QUEUED]
    message = f"{scheduled} {'book is' if scheduled == 1 else 'books are'} scheduled for info parsing."
    return jsonify(message=message, batch_id=batch_id, counts=counts, results=results), 202


@bp.get("/getBookInfo")
def get_book_info() -> Response | tuple[Response, int]:
    """The stored record of a book, or where the book stands."""
    urls = _url_parameters()
    if not urls:
        raise ApiError(400, "missing_url", "give the book's link as ?url=<link>")
    if len(urls) > 1:
        raise ApiError(400, "repeated_url", "give exactly one url parameter")
    book_id = parse_link(urls[0])
    if isinstance(book_id, Refusal):
        raise ApiError(400, "invalid_link", book_id.reason)
    queue = _queue()
    try:
        body = _record_cache().fetch(book_id, lambda: _record_body(queue.store, book_id))
        state = queue.state(book_id) if body is None else None
        if state is not None and state.status == BookStatus.STORED:  # stored between the two reads
            body = _record_body(queue.store, book_id)
    except UnsafeRecord as error:
        current_app.logger.warning("refused the stored record of book %s: %s", book_id, error)
        return _state_response(
            book_id,
            BookState(
                BookStatus.FAILED,
                reason="the stored record is not plain data and was refused; send the link again with ?refresh=true",
            ),
        )
    if body is not None:
        return Response(body, 200, content_type="application/json")
    if state is None or state.status == BookStatus.STORED:  # its record gone since
        state = BookState(BookStatus.UNKNOWN)
    return _state_response(book_id, state)


@bp.get("/batches/<batch_id>")
def batch_progress(batch_id: str) -> tuple[Response, int]:
    """A page of a batch's links with each book's status, counts per status, when they were
    counted, and whether it is finished; never waits for a large batch's count."""
    batch = _load_batch(batch_id)
    cursor, limit = _page_window(batch)
    return jsonify(page(_batches(), batch, _queue(), cursor, limit)), 200


@bp.get("/batches/<batch_id>/books")
def batch_books(batch_id: str) -> Response:
    """The stored records of a batch's books, streamed as JSON Lines or CSV."""
    export_format = _export_format()
    batch = _load_batch(batch_id)
    return _export(
        lambda: _queue().store.iter_records(all_book_ids(_batches(), batch)), export_format, f"batch-{batch_id}"
    )


@bp.get("/books")
def all_books() -> Response:
    """Every stored record, streamed as JSON Lines or CSV (in no particular order)."""
    export_format = _export_format()
    store = _queue().store

    def records() -> Iterable[StoredRecord]:
        # Redis is first read while streaming, after the 200 has gone out: ask it now, so that
        # an unreachable Redis answers 503 instead of an export cut short.
        store.redis.ping()
        index_earlier_records(_queue())  # once: records from before the index are listed too
        return store.iter_records(store.stored_book_ids())

    return _export(records, export_format, "books")


@bp.get("/")
def index() -> tuple[Response, int]:
    """Where a visitor of the bare address finds the API's description, the dashboard and the
    health checks, instead of a 404 that says nothing."""
    return jsonify(
        service="goodreads-book-info",
        message="POST Goodreads book links to /parseGoodreadsLinks; /openapi.json describes every endpoint",
        links={"openapi": "/openapi.json", "dashboard": "/rqstatus", "health": "/healthz", "ready": "/readyz"},
    ), 200


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return Response(OPENAPI_DOCUMENT, 200, mimetype="application/json")


@bp.get("/metrics")
def metrics() -> Response:
    """Queue, job, attempt, origin-status and fetch-latency metrics in the Prometheus text format."""
    queue = _queue()
    body = render_metrics(
        queue, Counters(queue.redis, queue.settings.key_prefix), OriginHealth(queue.redis, queue.settings)
    )
    return Response(body, 200, content_type=CONTENT_TYPE_LATEST)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """The process is up (no dependency is checked)."""
    return jsonify(status="ok"), 200


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Redis answers; how many workers serve the queue and how deep it is; whether Goodreads
    is paused (still ready: the service itself is fine)."""
    queue = _queue()
    queue.redis.ping()
    origin = OriginHealth(queue.redis, queue.settings).snapshot()
    return jsonify(
        status="ready",
        redis="ok",
        workers=queue.live_worker_count(),
        queue=queue.name,
        queue_depth=queue.job_counts().queued,
        origin={
            "state": "paused" if origin.paused else "ok",
            "reason": origin.reason or None,
            "since": iso(origin.since),
        },
    ), 200


def _submitted_links(limit: int) -> list[Submitted]:
    """The request's links, read by its content type: a JSON array (also without a JSON content
    type, as ``curl -d`` sends it), ``text/plain`` (a link per line) or ``text/csv`` (a Goodreads
    library export); 415 for any other type, before the body is read."""
    reader = LINE_READERS.get(request.mimetype)
    if reader is None and request.mimetype not in JSON_TYPES and not request.mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body's type {request.mimetype[:100]!r} is not taken: send a JSON array of links (application/json), "
            "one link per line (text/plain), or a Goodreads library export (text/csv, the file's bytes as they are)",
        )
    if reader is None:
        return _json_links(_request_body(), limit)
    try:
        submitted = list(islice(reader(_request_body()), limit + 1))
    except UnreadableBody as unreadable:
        raise ApiError(400, unreadable.code, unreadable.reason) from None
    if len(submitted) > limit:
        raise ApiError(
            413, "too_many_links", f"at most {limit} links or rows per request (MAX_LINKS_PER_REQUEST); split the file"
        )
    if not submitted:
        raise ApiError(400, "no_links", "the body holds no links (nor rows under a CSV's header)")
    return submitted


def _json_links(body: bytes, limit: int) -> list[Submitted]:
    try:
        links = json.loads(body or b"null")
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body must be a JSON array of Goodreads book links") from None
    if not isinstance(links, list):
        raise ApiError(400, "not_an_array", "the body must be a JSON array of Goodreads book links")
    if len(links) > limit:
        raise ApiError(413, "too_many_links", f"at most {limit} links per request; split the list")
    if not links:
        raise ApiError(400, "no_links", "the array holds no links")
    return [Submitted(link, parse_link(link)) for link in links]


def _link_result(item: Submitted, link: str | None, outcomes: dict[BookId, Outcome]) -> dict[str, Any]:
    """What the POST did with one link (or row), sent back as ``link``."""
    result: dict[str, Any] = {"link": link} if item.line is None else {"line": item.line, "link": link}
    if isinstance(item.book, Refusal):
        result.update(outcome=Outcome.REJECTED, reason=item.book.reason)
    else:
        book = item.book
        result.update(book_id=book, url=canonical_url(book), job_id=job_id(book), outcome=outcomes[book])
    return result


def _check_client_share(client: str, adding: int) -> None:
    """429 when the books could take the client past its ``CLIENT_QUEUED_BOOKS`` waiting."""
    share: QueueShare = current_app.extensions["queue_share"]
    waiting = share.waiting(client, adding)
    if share.share and waiting + adding > share.share:
        raise ApiError(
            429,
            "client_queue_full",
            f"{waiting} books of this client are waiting, and at most {share.share} may (CLIENT_QUEUED_BOOKS): "
            f"the {adding} books of this request were not queued; send them again once some are fetched",
            {"Retry-After": "60"},
        )


def _check_batch_space(client: str, size: int) -> None:
    """429 past the client's ``CLIENT_BATCH_BYTES`` of batches kept, 503 past ``MAX_BATCH_BYTES``,
    413 for a request that alone would pass either."""
    space: BatchSpace = current_app.extensions["batch_space"]
    refused = space.refusal(client, size)
    if refused is None:
        return
    scope, wait = refused
    bound, name = (
        (space.client_bound, "CLIENT_BATCH_BYTES") if scope == "client" else (space.total_bound, "MAX_BATCH_BYTES")
    )
    if size > bound:  # no wait would make room
        raise ApiError(
            413, "batch_too_large", f"this request's links take {size} bytes kept, more than {name} ({bound}); split it"
        )
    if scope == "client":
        raise ApiError(
            429,
            "client_batches_full",
            f"this client's batches kept (BATCH_TTL) hold at most {space.client_bound} bytes (CLIENT_BATCH_BYTES), "
            f"and this request's would pass it; nothing was queued; room comes back in {wait} s",
            {"Retry-After": str(wait)},
        )
    raise ApiError(
        503,
        "batches_full",
        f"the batches kept (BATCH_TTL) hold at most {space.total_bound} bytes (MAX_BATCH_BYTES), and this "
        f"request's would pass it; nothing was queued; room comes back in {wait} s",
        {"Retry-After": str(wait)},
    )


def _echo(link: object) -> str | None:
    """The link as sent, shortened; one that is not a string as the compact JSON it was sent
    as, so that the client can tell which of its links was refused."""
    if isinstance(link, str):
        return link[:ECHOED_LINK_LENGTH]
    try:
        return json.dumps(link, ensure_ascii=False, separators=(",", ":"))[:ECHOED_LINK_LENGTH]
    except RecursionError:  # nested almost as deep as json.loads allows: too deep to write back
        return None


def _url_parameters() -> list[str]:
    """The query's ``url`` parameters, as ``request.args.getlist("url")`` decodes them. A
    lookup's query is nearly always ``url=<link>`` alone, and that one is decoded directly:
    building ``request.args`` would cost the lookup more than the rest of its own work."""
    query = request.query_string
    if query.startswith(b"url=") and b"&" not in query:
        return [unquote_plus(query[4:].decode(), errors="werkzeug.url_quote")]
    return request.args.getlist("url")


def _record_body(store: BookStore, book_id: BookId) -> bytes | None:
    record = store.load_record(book_id)
    return None if record is None else json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _state_response(book_id: BookId, state: BookState) -> tuple[Response, int]:
    body: dict[str, Any] = {
        "status": state.status,
        "book_id": book_id,
        "url": canonical_url(book_id),
        "job_id": job_id(book_id),
        "message": STATUS_MESSAGES[state.status],
    }
    if state.reason:
        body["reason"] = state.reason
    # A retrying book always says how many attempts it spent (0: the last one was given back).
    if state.attempts or (state.status == BookStatus.RETRYING and state.attempts is not None):
        body["attempts"] = state.attempts
    if state.last_attempt_at:
        body["last_attempt_at"] = datetime.fromtimestamp(state.last_attempt_at, tz=UTC).isoformat()
    if state.next_attempt_at:
        # Once that time has passed the attempt is due, waiting for RQ's scheduler or a worker: now at the earliest.
        next_attempt_at = max(state.next_attempt_at, time.time())
        body["next_attempt_at"] = datetime.fromtimestamp(next_attempt_at, tz=UTC).isoformat()
    return jsonify(body), STATUS_HTTP[state.status]


def _load_batch(batch_id: str) -> Batch:
    batch = _batches().load(batch_id)
    if batch is None:
        raise ApiError(404, "unknown_batch", "no such batch (batches expire after BATCH_TTL)")
    return batch


def _page_window(batch: Batch) -> tuple[int, int]:
    """``?cursor=`` (where the page starts, as ``next_cursor`` gave it) and ``?limit=`` (0 for the counts only)."""
    largest = _queue().settings.batch_page_size
    cursor = _whole_number(request.args.get("cursor", "0"), batch.links)
    if cursor is None:
        raise ApiError(400, "invalid_cursor", f"?cursor= takes a next_cursor of this batch (0 to {batch.links})")
    limit = _whole_number(request.args.get("limit", str(largest)), largest)
    if limit is None:
        raise ApiError(400, "invalid_limit", f"?limit= takes a whole number from 0 to {largest}")
    return cursor, limit


def _whole_number(text: str, largest: int) -> int | None:
    """The number ``text`` spells in ASCII digits, if it is at most ``largest``."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(largest)) + 1:
        return None
    number = int(text)
    return number if number <= largest else None


def _export_format() -> str:
    export_format = request.args.get("format", "jsonl")
    if export_format not in FORMATS:
        raise ApiError(400, "invalid_format", "?format= takes jsonl or csv")
    return export_format


def _export(records: Callable[[], Iterable[StoredRecord]], export_format: str, name: str) -> Response:
    """Stream the ``records`` as one of this process's MAX_EXPORTS exports at once (429 past
    them: streaming thousands of records takes the process's CPU from every lookup)."""
    exports: Gate = current_app.extensions["exports"]
    if not exports.enter():
        raise ApiError(
            429,
            "too_many_exports",
            f"{exports.limit} exports are being streamed (MAX_EXPORTS); try again shortly",
            {"Retry-After": str(EXPORT_RETRY_AFTER)},
        )
    try:
        response = Response(
            stream_with_context(in_pieces(export_lines(records(), export_format))),
            mimetype=FORMATS[export_format],
            headers={"Content-Disposition": f'attachment; filename="{name}.{export_format}"'},
        )
    except BaseException:
        exports.leave()
        raise
    response.call_on_close(exports.leave)
    return response


def _callback_url(queue: BookQueue) -> str | None:
    """The ``callback_url`` parameter, if given and allowed."""
    url = request.args.get("callback_url")
    if url is None:
        return None
    reason = refusal(url, queue.settings.callback_hosts, [*queue.settings.redis_addresses, *_web_addresses()])
    if reason:
        raise ApiError(400, "invalid_callback_url", reason)
    return url


def _web_addresses() -> list[tuple[str, int]]:
    """The address this request reached the web on: the host name it asked for and the one
    gunicorn listens on, at gunicorn's port (as they were before a proxy's headers)."""
    environ = request.environ.get("werkzeug.proxy_fix.orig", request.environ)
    port = str(environ.get("SERVER_PORT", ""))
    if not port.isdigit():  # a Unix socket
        return []
    names = {str(environ.get("SERVER_NAME", "")), urlsplit(f"//{environ.get('HTTP_HOST', '')}").hostname or ""}
    return [(name.lower(), int(port)) for name in names if name]


def _flag(name: str) -> bool:
    """A true/false query parameter."""
    value = request.args.get(name, "false").strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise ApiError(400, f"invalid_{name}", f"?{name}= takes true or false")
