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

Nothing but a parsed book is ever stored as a record of Goodreads'. When Goodreads says no
(the fleet paused for a challenge or a refusal, or the book ``blocked``), worker/fallback.py
asks Open Library for the book, whose record is kept until Goodreads' replaces it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from rq import Retry, get_current_job
from rq.job import Job

from books.counters import Counters
from books.links import BookId, canonical_url, parse_book_path
from books.origin import FINAL_STATUS, OriginHealth, OriginState, iso
from books.record import GOODREADS, Record
from books.settings import Settings
from books.status import BookStatus
from books.store import BookStore, RecordLimits, UnsafeRecord
from worker import fallback
from worker.context import cookies, session, settings
from worker.fetch import AttemptFailed, OriginResponse, OriginTrouble, fetch_book_page, origin_trouble
from worker.parser import NotABookPage, parse_book_page
from worker.ratelimit import FetchRateLimiter, SlotTooFar
from worker.recovery import WorkerRecovery
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


class OriginPaused(Exception):
    """The fleet paused while this book waited for its request slot."""


# How long the job's own gate stands for its first request: asking again a moment later
# would only spend a round trip to Redis.
GATE_FRESH_SECONDS = 1.0


class Admission:
    """Lets a book's requests out while the origin is fine, or as the fleet's probe (claimed
    when the job starts, with the book to probe with: ``probe_book``)."""

    def __init__(self, health: OriginHealth, book_id: str, probing: bool, probe_book: str | None = None) -> None:
        self.health = health
        self.book_id = book_id
        self.probing = probing
        self.probe_book = probe_book if probe_book != book_id else None
        self.gated_until = time.monotonic() + GATE_FRESH_SECONDS  # the job has just asked

    def __call__(self) -> None:
        if self.probing:
            return
        if time.monotonic() < self.gated_until:
            self.gated_until = 0.0
            return
        # A job that found the origin fine does not become the probe midway: its own book could
        # be what the origin refuses; the next job claims the probe, with a book served before.
        if self.health.gate(self.book_id, may_probe=False)[0] == "wait":
            raise OriginPaused


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
        return _defer(store, health, book_id)
    admission = Admission(health, book_id, gate == "probe", probe_book)
    attempt = Attempt(book_id, job.id, store.progress.started(book_id))
    started = time.perf_counter()
    try:
        outcome = _fetch_parse_store(BookId(book_id), config, store, attempt, admission)
    except OriginPaused:
        return _defer(store, health, book_id)
    except SlotTooFar as far:
        return _wait_for_slot(store, book_id, far.wait)
    except OriginTrouble as trouble:
        return _origin_trouble(job, store, health, attempt, admission, trouble, started)
    except Exception as error:
        failure = (
            error
            if isinstance(error, AttemptFailed)
            else AttemptFailed(BookStatus.FAILED, f"unexpected error: {type(error).__name__}: {str(error)[:200]}")
        )
        outcome = _record_failure(job, store, book_id, failure)
        _report(attempt, outcome, started, store, failure.reason)
        # An unexpected error keeps its own traceback as the cause (the worker logs it as an error).
        raise failure from (None if failure is error else error)
    _report(attempt, outcome, started, store)
    return outcome


def _origin_trouble(
    job: Job,
    store: BookStore,
    health: OriginHealth,
    attempt: Attempt,
    admission: Admission,
    trouble: OriginTrouble,
    started: float,
) -> str | Retry:
    """Report the answer to the fleet; defer the book, its attempt unspent, unless the answer
    looks like its own (the fleet runs, and this book met such an answer before)."""
    book_id = attempt.book_id
    reason = trouble.reason
    if trouble.state in (OriginState.CHALLENGE, OriginState.REFUSED) and cookies().in_use:
        reason += "; the session cookies were refused or have expired"
    verdict, changed = health.report_trouble(
        book_id, trouble.state, reason, trouble.retry_after or 0, admission.probing
    )
    if verdict == "paused_now" or changed:
        log.warning(
            "origin paused: every worker stops fetching",
            extra={"fields": {"origin_state": trouble.state, "reason": reason, "book_id": book_id}},
        )
    # Its own: shown so, or met a second time while the fleet runs.
    own = verdict == "own" or (verdict == "counted" and not store.progress.struck(book_id))
    if not own:
        _report(attempt, BookStatus.PAUSED, started, store, reason)
        return _defer(store, health, book_id, trouble, reason)
    failure = AttemptFailed(FINAL_STATUS[trouble.state], reason, trouble.retry_after)
    outcome = _record_failure(job, store, book_id, failure)
    _report(attempt, outcome, started, store, failure.reason)
    raise failure from None


def _defer(
    store: BookStore,
    health: OriginHealth,
    book_id: str,
    trouble: OriginTrouble | None = None,
    reason: str | None = None,
) -> str | Retry:
    """Put the book aside without spending an attempt: until the fleet's next probe while the
    origin is paused, for a moment if not (one odd answer), for good past ORIGIN_PAUSE_MAX."""
    config = settings()
    origin = health.snapshot()
    now = time.time()
    if not origin.paused:
        if trouble is None:  # the origin recovered a moment ago
            return Retry(max=DEFERRALS_MAX, interval=1)
        # RQ's scheduler keeps whole seconds and may run a job up to a second early: add one.
        wait = math.ceil(max((config.retry_intervals or (1,))[0], trouble.retry_after or 0, 1)) + 1
        store.progress.deferred(book_id, reason or "", now + wait)
        return Retry(max=DEFERRALS_MAX, interval=wait)
    paused_since = store.progress.paused_since(book_id, now)
    if now - paused_since >= config.origin_pause_max:
        final = FINAL_STATUS[origin.state]
        store.progress.gave_up_waiting(
            book_id,
            final,
            f"{origin.reason} (since {iso(origin.since)}); the book waited longer than ORIGIN_PAUSE_MAX "
            f"({config.origin_pause_max} s); send the link again to try again",
        )
        log.info("book gave up waiting", extra={"fields": {"book_id": book_id, "outcome": final}})
        return str(final)
    wake_at, _prober = health.park(book_id)
    wake_at = min(wake_at, paused_since + config.origin_pause_max)
    store.progress.paused(book_id, origin.describe(), wake_at)
    return Retry(max=DEFERRALS_MAX, interval=max(1, math.ceil(wake_at - now)))


def _wait_for_slot(store: BookStore, book_id: str, wait: float) -> Retry:
    """Put the book aside until about when a request slot comes within FETCH_WAIT_MAX, its
    attempt unspent; it comes back at the front of the queue, ahead of books not yet tried."""
    config = settings()
    # RQ's scheduler keeps whole seconds and may run a job up to a second early.
    interval = max(1, math.ceil(wait - config.fetch_wait_max))
    store.progress.waiting_for_slot(
        book_id,
        f"waiting for a request slot (FETCH_RATE {config.fetch_rate:g}/s, shared by every worker)",
        time.time() + interval,
    )
    return Retry(max=DEFERRALS_MAX, interval=interval, enqueue_at_front=True)


def _report(attempt: Attempt, outcome: BookStatus, started: float, store: BookStore, reason: str | None = None) -> None:
    Counters(store.redis, store.prefix).record_attempt(outcome, attempt.origin_status, attempt.fetch_seconds)
    fields = {**asdict(attempt), "outcome": outcome, "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
    if reason:
        fields["reason"] = reason
    settled = outcome in (BookStatus.STORED, BookStatus.NOT_FOUND, BookStatus.PAUSED)
    log.log(logging.INFO if settled else logging.WARNING, "book attempt", extra={"fields": fields})


def _fetch_parse_store(
    book_id: BookId, config: Settings, store: BookStore, attempt: Attempt, admission: Admission
) -> BookStatus:
    if parse_book_path(f"/book/show/{book_id}") != book_id:
        raise AttemptFailed(BookStatus.FAILED, f"{book_id!r} is not a valid book id")
    limiter = FetchRateLimiter.for_settings(store.redis, config)
    cookies().refresh(session())
    if admission.probe_book:
        _probe(BookId(admission.probe_book), config, store, limiter, admission)
    rules = Robots(store.redis, config).rules(session(), limiter, admission)
    if not rules.can_fetch(config.user_agent, canonical_url(book_id, config.origin)):
        store.progress.ended(book_id, BookStatus.BLOCKED, "Goodreads' robots.txt disallows this page for this service")
        return BookStatus.BLOCKED
    crawl_delay = rules.crawl_delay(config.user_agent)
    if crawl_delay:
        limiter = FetchRateLimiter.for_settings(store.redis, config, float(crawl_delay))
    fetch_started = time.perf_counter()
    try:
        response = fetch_book_page(book_id, config, session(), limiter, admission)
    finally:
        attempt.fetch_seconds = time.perf_counter() - fetch_started
    attempt.origin_status = response.status
    _raise_origin_trouble(response, config, limiter)
    _origin_answered(store, book_id, admission.health)

    if response.status in (404, 410):
        store.progress.ended(book_id, BookStatus.NOT_FOUND, f"Goodreads answered HTTP {response.status}")
        return BookStatus.NOT_FOUND
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
        return BookStatus.STORED

    failure = _failure_for_status(response)
    if failure.retry_after:
        limiter.pause(failure.retry_after)
    raise failure


def _probe(
    probe_book: BookId, config: Settings, store: BookStore, limiter: FetchRateLimiter, admission: Admission
) -> None:
    """The fleet's probe, for a book the origin served before rather than this job's own (which
    anyone may have chosen for the origin to refuse): ``OriginTrouble`` if the origin is still
    in trouble, else the fleet resumes and the job goes on with its own book."""
    try:
        response = fetch_book_page(probe_book, config, session(), limiter, admission)
    except AttemptFailed:  # an answer, if not a whole page: about that book, not the origin
        pass
    else:
        _raise_origin_trouble(response, config, limiter)
    _origin_answered(store, None, admission.health)


def _raise_origin_trouble(response: OriginResponse, config: Settings, limiter: FetchRateLimiter) -> None:
    """Raise the answer's ``OriginTrouble``, if it is about the origin; a rate limit also holds
    every worker's next request back for its Retry-After."""
    trouble = origin_trouble(response)
    if trouble:
        if trouble.state == OriginState.RATE_LIMIT:
            limiter.pause(trouble.retry_after or (config.retry_intervals or (60,))[0])
        raise trouble


def _origin_answered(store: BookStore, book_id: str | None, health: OriginHealth) -> None:
    """Goodreads answered about a book itself: the fleet's streak ends, a pause ends (the
    paused books go back on the queue at once), and this job's book's pause is over."""
    if health.report_success(book_id):
        released = WorkerRecovery(store.redis, health.settings).release_paused()
        log.warning(
            "origin resumed: Goodreads serves pages again",
            extra={"fields": {"book_id": book_id, "released": released}},
        )


def _failure_for_status(response: OriginResponse) -> AttemptFailed:
    status, retry_after = response.status, response.retry_after
    if status >= 500:
        return AttemptFailed(BookStatus.FAILED, f"Goodreads failed to answer (HTTP {status})", retry_after)
    return AttemptFailed(BookStatus.FAILED, f"Goodreads answered HTTP {status}", retry_after)


def _record_failure(job: Job, store: BookStore, book_id: str, failure: AttemptFailed) -> BookStatus:
    """``retrying`` while RQ will try again, the final state otherwise; stretch the next
    retry interval to the origin's Retry-After. Returns the state recorded."""
    if not job.retries_left:
        store.progress.ended(book_id, failure.status, failure.reason)
        return failure.status
    if failure.retry_after:
        # RQ's scheduler keeps whole seconds and may run a retry up to a second early: add one.
        # RQ reuses the first interval while more retries are left than intervals: spell those
        # out, so that only the next one is stretched.
        intervals = list(job.retry_intervals or [0])
        intervals = [intervals[0]] * (job.retries_left - len(intervals)) + intervals
        index = len(intervals) - job.retries_left
        intervals[index] = max(intervals[index], math.ceil(failure.retry_after) + 1)
        job.retry_intervals = intervals
    # When RQ will try again (job.retry schedules it this far ahead), replacing the time an
    # earlier deferral left, which would otherwise be answered once it has passed.
    next_attempt_at = time.time() + job.get_retry_interval()
    store.progress.ended(book_id, BookStatus.RETRYING, f"{failure.status}: {failure.reason}", next_attempt_at)
    return BookStatus.RETRYING
