"""Open Library as the second source: a book's record from openlibrary.org when Goodreads says no.

``fill_book`` is an RQ job on the control queue (worker/fallback.py asks for it). It looks the
book up by its ISBN-13, when an import gave one (``/isbn/<isbn13>.json``, which redirects to
the edition), else by its Goodreads id (``/search.json?q=id_goodreads:<id>``, then the edition
when the work has only one); then the work (``/works/<OLID>.json``) for the description, and
the authors (``/authors/<OLID>.json``) when the search gave no names. Every URL is built from
the validated book id, ISBN-13 or OLIDs (worker/openlibrary_parser.py); nothing else an answer
says is followed but a redirect to an edition on the same origin.

Open Library is asked as politely as Goodreads, by the same machinery: the fleet's request
rate (``OPENLIBRARY_RATE``, worker/ratelimit.py, ``Crawl-delay`` honoured), its robots.txt
(worker/robots.py), the shared health of the origin with its pause and probes
(books/origin.py, in Open Library's own hash), and RQ's retries for a failed answer
(``RETRY_MAX``, ``RETRY_INTERVALS``). Requests say who sends them: the service's User-Agent
with ``CONTACT_EMAIL``, as Open Library asks. The record is written only if the book has no
record of Goodreads' (books/store.py), and leaves the book due for Goodreads.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from urllib.parse import urlencode, urljoin, urlsplit

from redis import Redis
from rq import Retry, get_current_job

from books.counters import Counters
from books.hints import Hints
from books.links import BookId, parse_book_path
from books.origin import OriginHealth, OriginState
from books.record import OPENLIBRARY, Record
from books.settings import Settings
from books.status import BookStatus
from books.store import BookStore, RecordLimits, UnsafeRecord
from worker.context import settings
from worker.fetch import (
    AttemptFailed,
    OriginResponse,
    OriginTrouble,
    fetch,
    new_session,
    origin_trouble,
    read_answer,
)
from worker.openlibrary_parser import (
    SEARCH_FIELDS,
    Finds,
    Json,
    author_keys,
    author_name,
    build_record,
    edition_is_the_book,
    load_json,
    olid,
    search_doc,
    valid_isbn13,
    work_key,
)
from worker.ratelimit import FetchRateLimiter, SlotTooFar
from worker.robots import Robots
from worker.tasks import DEFERRALS_MAX

log = logging.getLogger(__name__)

SITE = "Open Library"
# The most authors whose names are asked for, one request each.
MOST_AUTHORS = 3


def openlibrary_health(redis: Redis, config: Settings) -> OriginHealth:
    """Open Library's health, shared by the fleet as Goodreads' is, in a hash of its own."""
    return OriginHealth(redis, config, key=f"{config.key_prefix}:openlibrary:origin")


class OpenLibrary:
    """JSON answers of Open Library for one job: rate-limited, robots.txt honoured, bounded."""

    def __init__(self, redis: Redis, config: Settings) -> None:
        self.config = config
        self.origin = config.openlibrary_origin
        self.session = new_session(config)
        self.session.headers.update({"User-Agent": config.openlibrary_user_agent, "Accept": "application/json"})
        prefix = f"{config.key_prefix}:openlibrary"
        self.key = f"{prefix}:next-slot"
        # robots.txt's own request keeps to the rate; the others to its Crawl-delay as well.
        self.limiter = FetchRateLimiter(redis, self.key, config.openlibrary_rate, wait_max=config.fetch_wait_max)
        self.robots = Robots(redis, config, self.origin, f"{prefix}:robots", SITE)
        self.redis = redis
        self.requests = 0

    def get(self, path: str, query: dict[str, str] | None = None) -> Json | None:
        """The JSON object at ``path``; None for a 404 or a path robots.txt disallows.
        ``OriginTrouble`` for an answer about Open Library itself, ``AttemptFailed`` for others."""
        url = f"{self.origin}{path}" + (f"?{urlencode(query)}" if query else "")
        rules = self.robots.rules(self.session, self.limiter, lambda: None)
        if not rules.can_fetch(self.config.user_agent, url):
            log.info("robots.txt disallows an Open Library request", extra={"fields": {"path": path}})
            return None
        crawl_delay = float(rules.crawl_delay(self.config.user_agent) or 0)
        config = self.config
        limiter = FetchRateLimiter(self.redis, self.key, config.openlibrary_rate, crawl_delay, config.fetch_wait_max)
        for _hop in range(self.config.max_redirects + 1):
            answer, location = self._answer(url, limiter)
            if location:
                url = self._edition_redirect(url, location)
                continue
            trouble = origin_trouble(answer, SITE)
            if trouble:
                if trouble.state == OriginState.RATE_LIMIT:
                    limiter.pause(trouble.retry_after or (self.config.retry_intervals or (60,))[0])
                raise trouble
            if answer.status in (404, 410):
                return None
            if answer.status != 200:
                raise AttemptFailed(BookStatus.FAILED, f"{SITE} answered HTTP {answer.status}", answer.retry_after)
            found = load_json(answer.body)
            if found is None:
                raise AttemptFailed(BookStatus.FAILED, f"{SITE} answered {path} with something else than a JSON object")
            return found
        raise AttemptFailed(BookStatus.FAILED, f"more than {self.config.max_redirects} redirects")

    def _answer(self, url: str, limiter: FetchRateLimiter) -> tuple[OriginResponse, str]:
        """The answer, and where it redirects to ("" if it does not)."""
        with fetch(url, self.config, self.session, limiter, lambda: None, SITE) as response:
            self.requests += 1  # answered (a request held back for its slot is not counted)
            location = response.headers.get("Location", "") if response.is_redirect else ""
            if location:
                return OriginResponse(response.status_code, b"", None, url, ""), location
            return read_answer(response, url, self.config, self.config.max_page_bytes, site=SITE), ""

    def _edition_redirect(self, current: str, location: str) -> str:
        """Where an ``/isbn/`` answer sends: only an edition of the same origin."""
        target = urlsplit(urljoin(current, location))
        edition = olid(target.path.removesuffix(".json"), "M")
        if (target.scheme, target.netloc) != urlsplit(self.origin)[:2] or edition is None:
            raise AttemptFailed(BookStatus.FAILED, f"{SITE} redirected elsewhere than to an edition")
        return f"{self.origin}/books/{edition}.json"


def lookup(client: OpenLibrary, book_id: BookId, isbn13: str | None) -> Finds:
    """What Open Library knows of the book: by its ISBN-13 if given, else by its Goodreads id."""
    edition = client.get(f"/isbn/{isbn13}.json") if isbn13 else None
    edition = edition if edition_is_the_book(edition, book_id, isbn13) else None
    doc = None
    if edition is None:
        doc = search_doc(client.get("/search.json", {"q": f"id_goodreads:{book_id}", "fields": SEARCH_FIELDS}), book_id)
        if doc is None:
            return Finds()
        editions = doc.get("edition_key")
        only = olid(editions[0], "M") if isinstance(editions, list) and len(editions) == 1 else None
        candidate = client.get(f"/books/{only}.json") if only else None
        edition = candidate if edition_is_the_book(candidate, book_id, isbn13) else None
    finds = Finds(doc, edition)
    work = work_key(finds)
    names: list[str] = []
    if not (doc and doc.get("author_name")):
        authors = (author_name(client.get(f"/authors/{key}.json")) for key in author_keys(edition, MOST_AUTHORS))
        names = [name for name in authors if name]
    return Finds(doc, edition, client.get(f"/works/{work}.json") if work else None, names)


def fill_book(book_id: str) -> str | Retry:
    """Write the book's record from Open Library, unless Goodreads' is there; return ``stored``,
    ``no_match``, ``goodreads`` (nothing to do) or ``gave_up``, or RQ's ``Retry`` to wait for a
    request slot or for Open Library to serve again."""
    job = get_current_job()
    assert job is not None, "fill_book runs as an RQ job"
    config = settings()
    if parse_book_path(f"/book/show/{book_id}") != book_id:
        raise ValueError(f"{book_id!r} is not a valid book id")
    store = BookStore(job.connection, config.key_prefix, RecordLimits.from_settings(config))
    if _has_goodreads_record(store, book_id):
        return "goodreads"
    if job.created_at and (datetime.now(UTC) - job.created_at.replace(tzinfo=UTC)).total_seconds() > (
        config.origin_pause_max
    ):
        return "gave_up"
    health = openlibrary_health(job.connection, config)
    gate, _ = health.gate(book_id)
    if gate == "wait":
        return _after_pause(health, 0)
    client = OpenLibrary(job.connection, config)
    counters = Counters(job.connection, config.key_prefix)
    hints = Hints(job.connection, config.key_prefix, config.batch_ttl).load(BookId(book_id))
    try:
        finds = lookup(client, BookId(book_id), valid_isbn13(hints.isbn13) if hints else None)
    except SlotTooFar as far:
        counters.record_second_source("deferred", client.requests)
        return Retry(max=DEFERRALS_MAX, interval=max(1, math.ceil(far.wait - config.fetch_wait_max)))
    except OriginTrouble as trouble:
        health.report_trouble(book_id, trouble.state, trouble.reason, trouble.retry_after or 0, gate == "probe")
        counters.record_second_source("trouble", client.requests)
        log.warning("Open Library trouble", extra={"fields": {"book_id": book_id, "reason": trouble.reason}})
        return _after_pause(health, trouble.retry_after or (config.retry_intervals or (60,))[0])
    except AttemptFailed:
        counters.record_second_source("failed", client.requests)
        raise
    health.report_success()
    outcome = _store(store, BookId(book_id), finds)
    counters.record_second_source(outcome, client.requests)
    log.info(
        "Open Library fill", extra={"fields": {"book_id": book_id, "outcome": outcome, "requests": client.requests}}
    )
    return outcome


def _store(store: BookStore, book_id: BookId, finds: Finds) -> str:
    """Write what was found; a find without even a title is no match (a record always has one)."""
    page = build_record(book_id, finds)
    if not finds.found or page["title"] is None:
        store.progress.no_fallback_match(book_id)
        return "no_match"
    record = Record(**page, fetched_at=datetime.now(UTC).isoformat(timespec="seconds"), source=OPENLIBRARY)
    try:
        written = store.save_second_source_record(book_id, record, OPENLIBRARY)
    except UnsafeRecord as error:
        raise AttemptFailed(BookStatus.FAILED, f"Open Library's record cannot be stored: {error}") from None
    return "stored" if written else "goodreads"


def _has_goodreads_record(store: BookStore, book_id: str) -> bool:
    with store.redis.pipeline(transaction=False) as pipe:
        pipe.exists(store.record_key(book_id))
        store.progress.read(pipe, book_id)
        exists, (_state, source, _fallback) = pipe.execute()
    return bool(exists) and source != OPENLIBRARY.encode()


def _after_pause(health: OriginHealth, wait: float) -> Retry:
    """Come back at Open Library's next probe while it is paused, else after ``wait`` seconds."""
    origin = health.snapshot()
    due = (origin.next_probe_at or 0) - time.time() if origin.paused else wait
    # RQ's scheduler keeps whole seconds and may run a job up to a second early: add one.
    return Retry(max=DEFERRALS_MAX, interval=max(1, math.ceil(due)) + 1)
