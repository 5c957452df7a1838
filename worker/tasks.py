"""The RQ job: fetch a book's page, parse it, store the record; turn failures into states.

Outcomes, as ``GET /getBookInfo`` reports them:

- a book page: the record is stored;
- HTTP 404 or 410: ``not_found``, not retried;
- a sign-in wall or a redirect away from the book: ``blocked``; 5xx, resets, oversized
  or cut-off bodies, pages without book data: ``failed``. Both are retried with the
  configured backoff (``Retry-After`` honoured) and stay ``retrying`` meanwhile;
- a page robots.txt disallows: never requested, ``blocked`` at once;
- an answer about Goodreads itself (a challenge, 401/403, 429 or 503 with Retry-After,
  no answer at all): reported to the fleet's shared origin state (books/origin.py).
  While the fleet is paused, or the first time this book meets such an answer, the
  job is deferred (it returns RQ's ``Retry``, which spends none of its retries, and its
  attempt is not counted) and the book is ``paused``; past ``ORIGIN_PAUSE_MAX`` it ends
  ``blocked`` (challenged, refused) or ``failed`` (unreachable). Otherwise the answer is
  this book's own (a wall for this book only: met twice while others are served, or
  Goodreads served the probe's book right after it) and it is retried as above. The probe
  asks for a book Goodreads served before, not the job's own.

What to do with what came back is chosen by ``decide`` (worker/decisions.py, a pure
function) and carried out in one place, ``_apply``: the book's progress (books/progress.py),
the attempt's report, and RQ's answer.

Nothing but a parsed book is ever stored as a record of Goodreads'. When Goodreads says no
(the fleet paused for a challenge or a refusal, or the book ``blocked``), worker/fallback.py
asks Open Library for the book, whose record is kept until Goodreads' replaces it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from rq import Retry, get_current_job
from rq.job import Job

from books.counters import Counters
from books.links import BookId, canonical_url, parse_book_path
from books.origin import OriginHealth, OriginSnapshot, iso
from books.record import GOODREADS, Record
from books.settings import Settings
from books.status import BookStatus
from books.store import BookStore, RecordLimits, UnsafeRecord
from worker import fallback, pause
from worker.context import cookies, session, settings
from worker.decisions import Came, Kind, Met, Origin, decide
from worker.fetch import AttemptFailed, OriginResponse, OriginTrouble, fetch_book_page
from worker.parser import NotABookPage, parse_book_page
from worker.ratelimit import FetchRateLimiter, SlotTooFar
from worker.robots import Robots

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """What one attempt at a book did, for the log and the metrics (its fields are log keys)."""

    book_id: str
    job_id: str
    attempt: int
    origin_status: int | None = None
    fetch_seconds: float | None = None


# RQ fails a job that returned ``Retry`` more often than its ``max``: deferrals are bounded
# by ORIGIN_PAUSE_MAX instead, so this is only a ceiling no pause reaches.
DEFERRALS_MAX = 1_000_000


# What waits for the origin when it is paused (rather than ends as the book's own).
WAITS_FOR_ORIGIN = (Met.ORIGIN_PAUSED, Met.ORIGIN_TROUBLE)
# What an attempt's log line gives its reason for.
WITH_REASON = (Met.FAILURE, Met.ORIGIN_TROUBLE)


def parse_book(book_id: str) -> str | Retry:
    """Fetch, parse and store one book; return ``stored``, ``not_found`` or ``blocked``
    (robots.txt), the final state of a book paused too long, or RQ's ``Retry`` to wait.
    Whatever the end, the second source is asked for the book if Goodreads said no."""
    job = get_current_job()
    assert job is not None, "parse_book runs as an RQ job"
    try:
        return _attempt(job, book_id)
    finally:
        fallback.after_attempt(job.connection, settings(), book_id)


def _attempt(job: Job, book_id: str) -> str | Retry:
    config = settings()
    store = BookStore(job.connection, config.key_prefix, RecordLimits.from_settings(config))
    health = OriginHealth(job.connection, config)
    gate, probe_book = health.gate(book_id)
    if gate == "wait":
        return _apply(job, store, health, book_id, Came(Met.ORIGIN_PAUSED))
    admission = pause.Admission(health, book_id, gate == "probe", probe_book)
    attempt = Attempt(book_id, job.id, store.progress.started(book_id))
    started = time.perf_counter()
    unexpected: Exception | None = None
    try:
        came = _fetch_parse_store(BookId(book_id), config, store, attempt, admission)
    except pause.OriginPaused:
        came = Came(Met.ORIGIN_PAUSED)
    except SlotTooFar as far:
        reason = f"waiting for a request slot (FETCH_RATE {config.fetch_rate:g}/s, shared by every worker)"
        came = Came(Met.SLOT_TOO_FAR, reason, wait=far.wait)
    except OriginTrouble as trouble:
        came = pause.report_trouble(store, health, book_id, admission, trouble)
    except AttemptFailed as failure:
        came = Came(Met.FAILURE, failure.reason, failure.status, retry_after=failure.retry_after)
    except Exception as error:
        unexpected = error
        came = Came(Met.FAILURE, f"unexpected error: {type(error).__name__}: {str(error)[:200]}")
    return _apply(job, store, health, book_id, came, (attempt, started), unexpected)


def _apply(
    job: Job,
    store: BookStore,
    health: OriginHealth,
    book_id: str,
    came: Came,
    attempt: tuple[Attempt, float] | None = None,
    unexpected: Exception | None = None,
) -> str | Retry:
    """Carry out what ``decide`` chose: write the book's progress, report the attempt (one that
    sent a request), answer RQ (a result, ``Retry``, or ``AttemptFailed`` for RQ's retries)."""
    config = settings()
    # Only what waits for the origin reads its state (a stored book is not charged the round trip).
    origin = health.snapshot() if came.met in WAITS_FOR_ORIGIN and not came.own else OriginSnapshot.from_hash({})
    now = time.time()
    paused_since = store.progress.paused_since(book_id, now) if origin.paused else now
    view = Origin(
        origin.paused,
        origin.state,
        now - paused_since,
        config.origin_pause_max,
        (config.retry_intervals or (1,))[0],
        config.fetch_wait_max,
    )
    decision = decide(came, view, job.retries_left or 0)
    if attempt and came.met not in (Met.ORIGIN_PAUSED, Met.SLOT_TOO_FAR):
        put_aside = came.met == Met.ORIGIN_TROUBLE and not came.own
        outcome = BookStatus.PAUSED if put_aside else decision.status
        if decision.kind == Kind.RETRY:
            outcome = BookStatus.RETRYING
        _report(*attempt, store, outcome, came.reason if came.met in WITH_REASON else None)
    progress = store.progress
    match decision.kind:
        case Kind.STORE:  # written with the record, its attempt spent (BookStore.save_record)
            return decision.status
        case Kind.NOT_FOUND | Kind.BLOCK:
            progress.ended(book_id, decision.status, decision.reason, attempt_spent=decision.spend_attempt)
            return decision.status
        case Kind.RETRY | Kind.FAIL:
            failure = AttemptFailed(decision.status, decision.reason, came.retry_after)
            if decision.kind == Kind.FAIL:
                progress.ended(book_id, decision.status, decision.reason, attempt_spent=decision.spend_attempt)
            else:
                next_attempt_at = now + _next_retry(job, decision.wait)
                progress.ended(
                    book_id, BookStatus.RETRYING, str(failure), next_attempt_at, attempt_spent=decision.spend_attempt
                )
            # An unexpected error keeps its own traceback as the cause (the worker logs it as an error).
            raise failure from unexpected
        case Kind.TRY_AGAIN:
            return Retry(max=DEFERRALS_MAX, interval=decision.wait)
        case Kind.DEFER:
            progress.deferred(book_id, decision.reason, now + decision.wait)
            return Retry(max=DEFERRALS_MAX, interval=decision.wait)
        case Kind.WAIT_FOR_SLOT:
            # It comes back at the front of the queue, ahead of books not yet tried.
            progress.waiting_for_slot(book_id, decision.reason, now + decision.wait)
            return Retry(max=DEFERRALS_MAX, interval=decision.wait, enqueue_at_front=True)
        case Kind.GIVE_UP:
            progress.gave_up_waiting(
                book_id,
                decision.status,
                f"{origin.reason} (since {iso(origin.since)}); the book waited longer than ORIGIN_PAUSE_MAX "
                f"({config.origin_pause_max} s); send the link again to try again",
            )
            log.info("book gave up waiting", extra={"fields": {"book_id": book_id, "outcome": decision.status}})
            return str(decision.status)
        case Kind.PARK:
            return Retry(
                max=DEFERRALS_MAX, interval=pause.park(health, progress, book_id, origin.describe(), paused_since, now)
            )


def _next_retry(job: Job, wait: int) -> int:
    """Seconds until RQ tries the job again, the next interval stretched to at least ``wait``
    (for the origin's Retry-After)."""
    if wait:
        # RQ reuses the first interval while more retries are left than intervals: spell those
        # out, so that only the next one is stretched.
        retries_left = job.retries_left or 0
        intervals = list(job.retry_intervals or [0])
        intervals = [intervals[0]] * (retries_left - len(intervals)) + intervals
        index = len(intervals) - retries_left
        intervals[index] = max(intervals[index], wait)
        job.retry_intervals = intervals
    # When RQ will try again (job.retry schedules it this far ahead), replacing the time an
    # earlier deferral left, which would otherwise be answered once it has passed.
    return job.get_retry_interval()


def _report(attempt: Attempt, started: float, store: BookStore, outcome: BookStatus, reason: str | None = None) -> None:
    Counters(store.redis, store.prefix).record_attempt(outcome, attempt.origin_status, attempt.fetch_seconds)
    fields = {**asdict(attempt), "outcome": outcome, "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
    if reason:
        fields["reason"] = reason
    settled = outcome in (BookStatus.STORED, BookStatus.NOT_FOUND, BookStatus.PAUSED)
    log.log(logging.INFO if settled else logging.WARNING, "book attempt", extra={"fields": fields})


def _fetch_parse_store(
    book_id: BookId, config: Settings, store: BookStore, attempt: Attempt, admission: pause.Admission
) -> Came:
    if parse_book_path(f"/book/show/{book_id}") != book_id:
        raise AttemptFailed(BookStatus.FAILED, f"{book_id!r} is not a valid book id")
    limiter = FetchRateLimiter.for_settings(store.redis, config)
    cookies().refresh(session())
    if admission.probe_book:
        pause.probe(BookId(admission.probe_book), config, store, limiter, admission)
    rules = Robots(store.redis, config).rules(session(), limiter, admission)
    if not rules.can_fetch(config.user_agent, canonical_url(book_id, config.origin)):
        return Came(Met.ROBOTS, "Goodreads' robots.txt disallows this page for this service")
    crawl_delay = rules.crawl_delay(config.user_agent)
    if crawl_delay:
        limiter = FetchRateLimiter.for_settings(store.redis, config, float(crawl_delay))
    fetch_started = time.perf_counter()
    try:
        response = fetch_book_page(book_id, config, session(), limiter, admission)
    finally:
        attempt.fetch_seconds = time.perf_counter() - fetch_started
    attempt.origin_status = response.status
    pause.raise_origin_trouble(response, config, limiter)
    pause.answered(store, book_id, admission.health)

    if response.status in (404, 410):
        return Came(Met.NOT_FOUND, f"Goodreads answered HTTP {response.status}")
    if response.status == 200:
        page = parse_book_page(response.body, book_id)
        if isinstance(page, NotABookPage):
            status = BookStatus.BLOCKED if page.kind == "sign_in_wall" else BookStatus.FAILED
            raise AttemptFailed(status, page.detail)
        record = Record(**page, fetched_at=datetime.now(UTC).isoformat(timespec="seconds"), source=GOODREADS)
        try:
            store.save_record(book_id, record, attempt_spent=True)
        except UnsafeRecord as error:
            raise AttemptFailed(BookStatus.FAILED, f"the page's record cannot be stored: {error}") from None
        admission.health.remember_served(book_id)
        return Came(Met.STORED)

    failure = _failure_for_status(response)
    if failure.retry_after:
        limiter.pause(failure.retry_after)
    raise failure


def _failure_for_status(response: OriginResponse) -> AttemptFailed:
    status, retry_after = response.status, response.retry_after
    if status >= 500:
        return AttemptFailed(BookStatus.FAILED, f"Goodreads failed to answer (HTTP {status})", retry_after)
    return AttemptFailed(BookStatus.FAILED, f"Goodreads answered HTTP {status}", retry_after)
