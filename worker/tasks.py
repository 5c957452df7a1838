"""The RQ job: fetch a book's page, parse it, store the record; turn failures into states.

Outcomes, as ``GET /getBookInfo`` reports them:

- a book page: the record is stored;
- HTTP 404 or 410: ``not_found``, not retried;
- a sign-in wall, HTTP 202 (AWS WAF's empty challenge), 403, 429 or a redirect
  away from the book: ``blocked``; 5xx, timeouts, resets, oversized or cut-off
  bodies, pages without book data: ``failed``. Both are retried with the
  configured backoff (``Retry-After`` honoured) and stay ``retrying`` meanwhile.

Nothing but a parsed book is ever stored as a record.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache

import requests
from rq import get_current_job
from rq.job import Job

from books.counters import Counters
from books.links import BookId, parse_book_path
from books.record import Record
from books.settings import Settings
from books.status import BookStatus
from books.store import BookStore, RecordLimits, UnsafeRecord
from worker.fetch import AttemptFailed, OriginResponse, fetch_book_page, new_session
from worker.parser import NotABookPage, parse_book_page
from worker.ratelimit import FetchRateLimiter

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """What one attempt at a book did, for the log and the metrics (its fields are log keys)."""

    book_id: str
    job_id: str
    attempt: int
    origin_status: int | None = None
    fetch_seconds: float | None = None


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def session() -> requests.Session:
    """The fetching session, made once per process. worker.rq_settings makes it in the
    worker's main process, so every work horse RQ forks starts from a copy of the same
    empty one: no book's cookies or connections reach another, and no horse pays for
    making it."""
    return new_session(settings())


def parse_book(book_id: str) -> str:
    """Fetch, parse and store one book; return ``stored`` or ``not_found``."""
    job = get_current_job()
    assert job is not None, "parse_book runs as an RQ job"
    config = settings()
    store = BookStore(job.connection, config.key_prefix, RecordLimits.from_settings(config))
    attempt = Attempt(book_id, job.id, store.count_attempt(book_id))
    started = time.perf_counter()
    try:
        outcome = _fetch_parse_store(BookId(book_id), config, store, attempt)
    except Exception as error:
        failure = (
            error
            if isinstance(error, AttemptFailed)
            else AttemptFailed(BookStatus.FAILED, f"unexpected error: {type(error).__name__}: {str(error)[:200]}")
        )
        outcome = _record_failure(job, store, book_id, failure)
        _report(attempt, outcome, started, store, failure.reason)
        raise failure from None
    _report(attempt, outcome, started, store)
    return outcome


def _report(attempt: Attempt, outcome: BookStatus, started: float, store: BookStore, reason: str | None = None) -> None:
    Counters(store.redis, store.prefix).record_attempt(outcome, attempt.origin_status, attempt.fetch_seconds)
    fields = {**asdict(attempt), "outcome": outcome, "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
    if reason:
        fields["reason"] = reason
    settled = outcome in (BookStatus.STORED, BookStatus.NOT_FOUND)
    log.log(logging.INFO if settled else logging.WARNING, "book attempt", extra={"fields": fields})


def _fetch_parse_store(book_id: BookId, config: Settings, store: BookStore, attempt: Attempt) -> BookStatus:
    if parse_book_path(f"/book/show/{book_id}") != book_id:
        raise AttemptFailed(BookStatus.FAILED, f"{book_id!r} is not a valid book id")
    limiter = FetchRateLimiter(store.redis, f"{config.key_prefix}:fetch:next-slot", config.fetch_rate)
    fetch_started = time.perf_counter()
    try:
        response = fetch_book_page(book_id, config, session(), limiter)
    finally:
        attempt.fetch_seconds = time.perf_counter() - fetch_started
    attempt.origin_status = response.status

    if response.status in (404, 410):
        store.record_outcome(book_id, BookStatus.NOT_FOUND, f"Goodreads answered HTTP {response.status}")
        return BookStatus.NOT_FOUND
    if response.status == 200:
        page = parse_book_page(response.body, book_id)
        if isinstance(page, NotABookPage):
            status = BookStatus.BLOCKED if page.kind == "sign_in_wall" else BookStatus.FAILED
            raise AttemptFailed(status, page.detail)
        record = Record(**page, fetched_at=datetime.now(UTC).isoformat(timespec="seconds"))
        try:
            store.save_record(book_id, record)
        except UnsafeRecord as error:
            raise AttemptFailed(BookStatus.FAILED, f"the page's record cannot be stored: {error}") from None
        return BookStatus.STORED

    failure = _failure_for_status(response)
    if failure.retry_after or response.status == 429:
        limiter.pause(failure.retry_after or (config.retry_intervals or (60,))[0])
    raise failure


def _failure_for_status(response: OriginResponse) -> AttemptFailed:
    status, retry_after = response.status, response.retry_after
    if status == 202:
        empty = "with an empty body " if not response.body.strip() else ""
        return AttemptFailed(BookStatus.BLOCKED, f"Goodreads answered HTTP 202 {empty}(a bot challenge)", retry_after)
    if status in (401, 403, 429):
        return AttemptFailed(BookStatus.BLOCKED, f"Goodreads refused the request (HTTP {status})", retry_after)
    if status >= 500:
        return AttemptFailed(BookStatus.FAILED, f"Goodreads failed to answer (HTTP {status})", retry_after)
    return AttemptFailed(BookStatus.FAILED, f"Goodreads answered HTTP {status}", retry_after)


def _record_failure(job: Job, store: BookStore, book_id: str, failure: AttemptFailed) -> BookStatus:
    """``retrying`` while RQ will try again, the final state otherwise; stretch the next
    retry interval to the origin's Retry-After. Returns the state recorded."""
    if not job.retries_left:
        store.record_outcome(book_id, failure.status, failure.reason)
        return failure.status
    store.record_outcome(book_id, BookStatus.RETRYING, f"{failure.status}: {failure.reason}")
    if failure.retry_after:
        # RQ's scheduler keeps whole seconds and may run a retry up to a second early: add one.
        # RQ reuses the first interval while more retries are left than intervals: spell those
        # out, so that only the next one is stretched.
        intervals = list(job.retry_intervals or [0])
        intervals = [intervals[0]] * (job.retries_left - len(intervals)) + intervals
        index = len(intervals) - job.retries_left
        intervals[index] = max(intervals[index], math.ceil(failure.retry_after) + 1)
        job.retry_intervals = intervals
    return BookStatus.RETRYING
