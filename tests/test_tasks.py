"""The parse job in process, on the tests' Redis and the local origin: every outcome ends in
the right state after the right number of attempts, with the counters and RQ agreeing, and
nothing but a parsed book is ever stored. The e2e layer (test_faults.py) checks the same
through real processes, with real waits between retries."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime

import pytest
from redis import Redis
from rq.job import Job, JobStatus

from books.counters import Counters, Totals
from books.links import BookId
from books.queue import BookQueue, job_id
from books.settings import Settings
from books.status import BookState, BookStatus, Outcome
from tests.origin import Origin
from worker import tasks
from worker.fetch import AttemptFailed
from worker.jobs import ServiceJob
from worker.rq_worker import BookWorker

BOOK = BookId("42")


def run_book(redis: Redis, settings: Settings, run_jobs, book_id: BookId = BOOK) -> tuple[BookState, Job | None]:
    """Queue the book as the API does, run the queue dry, and say where the book and its job
    stand (None: RQ deleted the job, as it does a finished one with RESULT_TTL=0)."""
    assert BookQueue(redis, settings).enqueue_books([book_id]) == {book_id: Outcome.QUEUED}
    run_jobs()
    return standing(redis, settings, book_id)


def standing(redis: Redis, settings: Settings, book_id: BookId = BOOK) -> tuple[BookState, Job | None]:
    """Where the book and its job stand (None: RQ deleted the job)."""
    exists = Job.exists(job_id(book_id), connection=redis)
    state = BookQueue(redis, settings).states([book_id])[book_id]
    return state, ServiceJob.fetch(job_id(book_id), connection=redis) if exists else None


def totals(redis: Redis, settings: Settings) -> Totals:
    return Counters(redis, settings.key_prefix).totals()


def record(redis: Redis, settings: Settings, book_id: BookId = BOOK):
    return BookQueue(redis, settings).store.load_record(book_id)


def test_a_book_page_is_stored(redis, settings, origin: Origin, run_jobs):
    state, job = run_book(redis, settings, run_jobs)
    assert (state.status, state.reason, state.attempts) == (BookStatus.STORED, None, 1)
    assert job is None  # finished: RQ deleted it and its result at once
    stored = record(redis, settings)
    assert (stored["book_id"], stored["title"], stored["author"]) == ("42", "The Long Way Home", "Ann Writer")
    assert abs(datetime.fromisoformat(stored["fetched_at"]) - datetime.now(UTC)).total_seconds() < 60
    assert len(origin.fetches("42")) == 1
    counted = totals(redis, settings)
    assert (counted.outcomes, counted.origin_statuses) == ({"stored": 1}, {"200": 1})
    assert counted.fetch_buckets[-1] == ("+Inf", 1) and 0 < counted.fetch_seconds_sum < 5


@pytest.mark.parametrize("status", ["404", "410"])
def test_a_missing_book_is_not_found_and_not_retried(redis, settings, origin, run_jobs, status):
    origin.behave("42", status)
    state, job = run_book(redis, settings, run_jobs)
    assert (state.status, state.reason, state.attempts) == (
        BookStatus.NOT_FOUND,
        f"Goodreads answered HTTP {status}",
        1,
    )
    assert job is None  # finished: RQ deleted it and its result at once
    assert len(origin.fetches("42")) == 1
    assert record(redis, settings) is None
    counted = totals(redis, settings)
    assert (counted.outcomes, counted.origin_statuses) == ({"not_found": 1}, {status: 1})


# steps, setting overrides, final status, reason, fetches per attempt, the origin status each attempt counts
FAILURES = {
    "500": (["500"], {}, BookStatus.FAILED, "Goodreads failed to answer (HTTP 500)", 1, "500"),
    "503": (["503"], {}, BookStatus.FAILED, "Goodreads failed to answer (HTTP 503)", 1, "503"),
    "418": (["418"], {}, BookStatus.FAILED, "Goodreads answered HTTP 418", 1, "418"),
    "waf": (
        ["waf"],
        {},
        BookStatus.BLOCKED,
        "Goodreads answered HTTP 202 with an empty body (a bot challenge, x-amzn-waf-action: challenge)",
        1,
        "202",
    ),
    "401": (["401"], {}, BookStatus.BLOCKED, "Goodreads refused the request (HTTP 401)", 1, "401"),
    "403": (["403"], {}, BookStatus.BLOCKED, "Goodreads refused the request (HTTP 403)", 1, "403"),
    "signin": (["signin"], {}, BookStatus.BLOCKED, "Goodreads answered with a sign-in page", 1, "200"),
    "no-book-data": (["200"], {}, BookStatus.FAILED, "the page holds no book data", 1, "200"),
    "truncated": (["truncated"], {}, BookStatus.FAILED, "the page was cut off: ProtocolError", 1, "none"),
    "reset": (["reset"], {}, BookStatus.FAILED, "connection to Goodreads failed: ConnectionError", 1, "none"),
    "stall": (
        ["stall:1"],
        {"FETCH_READ_TIMEOUT": "0.2"},
        BookStatus.FAILED,
        "Goodreads stopped sending the page (read timeout)",
        1,
        "none",
    ),
    "too-large": (
        ["huge:1"],
        {"MAX_PAGE_BYTES": "100000"},
        BookStatus.FAILED,
        "the page is larger than 100000 bytes",
        1,
        "none",
    ),
    "too-many-redirects": (["redirect"], {"MAX_REDIRECTS": "1"}, BookStatus.FAILED, "more than 1 redirects", 2, "none"),
    "other-host": (
        ["redirect:http://evil.example/book/show/42"],
        {},
        BookStatus.BLOCKED,
        "Goodreads redirected to another host (evil.example)",
        1,
        "none",
    ),
    "not-a-book-path": (
        ["redirect:/user/sign_in"],
        {},
        BookStatus.BLOCKED,
        "Goodreads redirected to '/user/sign_in', not a book page",
        1,
        "none",
    ),
}


# Answers that may be about Goodreads itself rather than the book: the book's first one is
# deferred (a fetch, no attempt spent); one book alone never pauses the fleet, so then it
# takes its own retries.
ORIGIN_LEVEL = {"waf", "401", "403"}


@pytest.mark.parametrize(
    ("case", "steps", "overrides", "status", "reason", "fetches", "origin_status"),
    [(case, *expected) for case, expected in FAILURES.items()],
    ids=FAILURES,
)
def test_a_fault_is_retried_then_ends_blocked_or_failed(
    redis, configure, origin, run_jobs, run_due_jobs, case, steps, overrides, status, reason, fetches, origin_status
):
    settings = configure(**overrides)
    origin.behave("42", *steps)
    state, job = run_book(redis, settings, run_jobs)
    free = int(case in ORIGIN_LEVEL)
    if free:
        assert (state.status, state.reason, state.attempts) == (BookStatus.RETRYING, reason, 0)
        assert (job.get_status(), job.retries_left) == (JobStatus.SCHEDULED, settings.retry_max)
        assert len(origin.fetches("42")) == fetches
        run_due_jobs()
        state, job = standing(redis, settings)
    attempts = settings.retry_max + 1
    assert (state.status, state.reason, state.attempts) == (status, reason, attempts)
    assert job.get_status() == JobStatus.FAILED
    assert f"AttemptFailed: {status}: {reason}" in job.latest_result().exc_string
    assert len(origin.fetches("42")) == (attempts + free) * fetches
    assert record(redis, settings) is None
    counted = totals(redis, settings)
    assert counted.outcomes == {"retrying": attempts - 1, status: 1, **({"paused": 1} if free else {})}
    assert counted.origin_statuses == {origin_status: attempts + free}


def test_a_fault_that_clears_up_is_stored_on_the_third_attempt(redis, settings, origin, run_jobs):
    origin.behave("42", "503", "503", "page")
    state, job = run_book(redis, settings, run_jobs)
    assert (state.status, state.reason, state.attempts) == (BookStatus.STORED, None, 3)
    assert job is None  # finished: RQ deleted it and its result at once
    assert record(redis, settings)["book_id"] == "42"
    assert len(origin.fetches("42")) == 3
    counted = totals(redis, settings)
    assert (counted.outcomes, counted.origin_statuses) == ({"retrying": 2, "stored": 1}, {"200": 1, "503": 2})


def test_a_same_origin_book_redirect_is_followed_and_stored(redis, settings, origin, run_jobs):
    origin.behave("42", "redirect", "page")
    state, _job = run_book(redis, settings, run_jobs)
    assert (state.status, state.attempts) == (BookStatus.STORED, 1)
    assert [a.path for a in origin.fetches("42")] == ["/book/show/42", "/book/show/42.Some_Title"]
    assert record(redis, settings)["book_id"] == "42"


@pytest.mark.parametrize(
    ("step", "status", "reason", "free"),
    [
        ("503", BookStatus.FAILED, "Goodreads failed to answer (HTTP 503)", 0),
        (
            "waf",
            BookStatus.BLOCKED,
            "Goodreads answered HTTP 202 with an empty body (a bot challenge, x-amzn-waf-action: challenge)",
            1,
        ),
        ("429:30", BookStatus.BLOCKED, "Goodreads asked for a pause (HTTP 429, rate limit, Retry-After 30 s)", 1),
    ],
)
def test_without_retries_the_first_failure_is_final(
    redis, configure, origin, run_jobs, run_due_jobs, step, status, reason, free
):
    """The first failure charged to the book: an answer about the origin is first deferred, free."""
    settings = configure(RETRY_MAX="0")
    origin.behave("42", step)
    state, job = run_book(redis, settings, run_jobs)
    if free:
        assert (state.status, state.reason, state.attempts) == (BookStatus.RETRYING, reason, 0)
        assert job.get_status() == JobStatus.SCHEDULED
        run_due_jobs()
        state, job = standing(redis, settings)
    assert (state.status, state.reason, state.attempts) == (status, reason, 1)
    assert (job.get_status(), job.retries_left) == (JobStatus.FAILED, None)
    assert len(origin.fetches("42")) == 1 + free
    assert totals(redis, settings).outcomes == {status: 1, **({"paused": 1} if free else {})}


def scheduled_in(queue: BookQueue, job: Job) -> float:
    """Seconds from now until RQ's scheduler will run the job again."""
    return queue.rq_queue.scheduled_job_registry.get_scheduled_time(job).timestamp() - time.time()


def test_a_book_waiting_for_its_retry_is_retrying_with_the_reason(redis, configure, origin, run_jobs):
    settings = configure(RETRY_INTERVALS="60")
    origin.behave("42", "503")
    state, job = run_book(redis, settings, run_jobs)
    assert state.status == BookStatus.RETRYING
    assert (state.reason, state.attempts) == ("failed: Goodreads failed to answer (HTTP 503)", 1)
    assert (job.get_status(), job.retries_left) == (JobStatus.SCHEDULED, 1)
    queue = BookQueue(redis, settings)
    assert job.id in queue.rq_queue.scheduled_job_registry.get_job_ids()
    assert 58 <= scheduled_in(queue, job) <= 60
    assert len(origin.fetches("42")) == 1
    assert totals(redis, settings).outcomes == {"retrying": 1}


def test_a_429_pauses_every_fetch_and_stretches_the_next_retry(redis, configure, origin, run_jobs, run_due_jobs):
    settings = configure(FETCH_RATE="100", RETRY_INTERVALS="1,1")
    limiter_key = f"{settings.key_prefix}:fetch:next-slot"
    reason = "Goodreads asked for a pause (HTTP 429, rate limit, Retry-After 30 s)"

    def paused_for() -> float:
        seconds, microseconds = redis.time()
        return int(redis.get(limiter_key)) / 1_000_000 - (seconds + microseconds / 1_000_000)

    origin.behave("42", "429:30")
    state, job = run_book(redis, settings, run_jobs)
    # The book's first 429 is deferred past the Retry-After, its attempt unspent.
    assert (state.status, state.reason, state.attempts) == (BookStatus.RETRYING, reason, 0)
    assert job.retry_intervals == [1, 1]
    assert 29 <= scheduled_in(BookQueue(redis, settings), job) <= 31  # Retry-After and a second
    assert 29 <= paused_for() <= 30
    redis.delete(limiter_key)  # the pause is over

    run_due_jobs()  # the second 429 is the book's own: its first retry waits the Retry-After
    state, job = standing(redis, settings)
    assert (state.status, state.reason, state.attempts) == (BookStatus.RETRYING, f"blocked: {reason}", 1)
    assert job.retry_intervals == [31, 1]  # Retry-After and a second for RQ's whole-second scheduler
    assert 29 <= scheduled_in(BookQueue(redis, settings), job) <= 31
    assert 29 <= paused_for() <= 30
    assert len(origin.fetches("42")) == 2


def test_an_invalid_book_id_in_a_crafted_job_fails_without_a_fetch(redis, settings, origin, run_jobs):
    queue = BookQueue(redis, settings)
    crafted = BookId("042")
    queue.rq_queue.enqueue_job(queue.build_job(crafted))
    run_jobs()
    state = queue.states([crafted])[crafted]
    assert (state.status, state.reason) == (BookStatus.FAILED, "'042' is not a valid book id")
    assert ServiceJob.fetch(job_id(crafted), connection=redis).get_status() == JobStatus.FAILED
    assert origin.fetches() == []
    counted = totals(redis, settings)
    assert counted.origin_statuses == {"none": state.attempts}
    assert counted.fetch_buckets[-1] == ("+Inf", 0)


def test_an_unexpected_error_fails_the_book_and_says_what_it_was(redis, settings, origin, run_jobs, monkeypatch):
    def broken_parser(body: bytes, book_id: str):
        raise RuntimeError("the parser broke")

    monkeypatch.setattr(tasks, "parse_book_page", broken_parser)
    state, job = run_book(redis, settings, run_jobs)
    assert (state.status, state.reason, state.attempts) == (
        BookStatus.FAILED,
        "unexpected error: RuntimeError: the parser broke",
        settings.retry_max + 1,
    )
    assert job.get_status() == JobStatus.FAILED
    assert record(redis, settings) is None
    assert len(origin.fetches("42")) == settings.retry_max + 1


def test_a_retry_after_stretches_only_the_next_retry_when_intervals_are_fewer_than_retries(
    redis, configure, origin, run_jobs, run_due_jobs
):
    """RQ reuses the first interval while retries outnumber intervals; stretching it must not
    stretch the later retries too."""
    settings = configure(FETCH_RATE="0", RETRY_INTERVALS="1", RETRY_MAX="2")
    origin.behave("42", "429:5")
    run_book(redis, settings, run_jobs)  # the first 429 is deferred, free
    run_due_jobs()  # the second is the book's own
    state, job = standing(redis, settings)
    assert (state.status, state.attempts) == (BookStatus.RETRYING, 1)
    assert job.retry_intervals == [6, 1]
    assert 4 <= scheduled_in(BookQueue(redis, settings), job) <= 6


FAILURE = AttemptFailed(BookStatus.FAILED, "Goodreads failed to answer (HTTP 503)")


def test_a_failed_attempt_leaves_its_traceback_at_debug_and_a_bug_stays_an_error(redis, configure, caplog):
    """A page that fails is one WARNING line (the attempt's event, from the job); the worker adds
    its traceback at DEBUG only, not an ERROR per retry. An unexpected error stays an ERROR,
    with the traceback of its cause. Either way the worker's exception handlers run."""
    configure()
    worker = BookWorker(["books"], connection=redis)
    handled: list[type] = []
    worker.push_exc_handler(lambda job, kind, value, traceback: handled.append(kind))
    job = Job.create("worker.tasks.parse_book", args=("42",), id="book-42", connection=redis)
    caplog.set_level(logging.DEBUG, logger="rq.worker")

    try:
        raise FAILURE
    except AttemptFailed:
        worker.handle_exception(job, *sys.exc_info())
    records = [r for r in caplog.records if "job book-42" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert "Traceback" in records[0].getMessage()

    caplog.clear()
    try:
        try:
            {}["title"]
        except KeyError as bug:
            raise AttemptFailed(BookStatus.FAILED, "unexpected error: KeyError: 'title'") from bug
    except AttemptFailed:
        worker.handle_exception(job, *sys.exc_info())
    records = [r for r in caplog.records if "job book-42" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.ERROR]
    assert "KeyError: 'title'" in records[0].getMessage()
    assert handled == [AttemptFailed, AttemptFailed]
