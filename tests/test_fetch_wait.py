"""A job waits for its request slot at most FETCH_WAIT_MAX: a farther slot is left free, and the
book is put aside with RQ's scheduler, its attempt unspent, reported as queued."""

from __future__ import annotations

import time

import pytest
from redis import Redis
from rq.job import JobStatus

from books.links import BookId
from books.queue import BookQueue, job_id
from books.settings import ConfigError, Settings
from books.status import BookStatus
from worker.jobs import ServiceJob
from worker.ratelimit import FetchRateLimiter, SlotTooFar

KEY = "test:next-slot"


def test_a_slot_further_than_the_wait_max_is_not_taken(redis: Redis):
    limiter = FetchRateLimiter(redis, KEY, rate=2, wait_max=0.6)  # a slot every 0.51 s
    assert limiter.wait_for_slot() == 0.0
    assert limiter.room_in() == 0.0
    waited = limiter.wait_for_slot()  # the next slot, 0.51 s on: within reach
    assert 0.45 <= waited <= 0.51
    taken = redis.get(KEY)
    with pytest.raises(SlotTooFar) as far:
        FetchRateLimiter(redis, KEY, rate=2, wait_max=0.3).wait_for_slot()
    assert 0.45 <= far.value.wait <= 0.51
    assert redis.get(KEY) == taken, "the slot it did not use stays free"
    assert 0.15 <= FetchRateLimiter(redis, KEY, rate=2, wait_max=0.3).room_in() <= 0.21


def test_a_request_is_spaced_from_the_last_one_sent(redis: Redis):
    """A request whose slot came while the one before it was sent late waits the difference."""
    limiter = FetchRateLimiter(redis, KEY, rate=10)
    limiter.wait_for_slot()
    redis.delete(KEY)  # the next slot is free at once, as if the last request had been sent late
    started = time.monotonic()
    limiter.wait_for_slot()
    assert time.monotonic() - started >= 0.1 * 1.02 - 0.005


def test_fetch_wait_max_stays_well_inside_job_timeout():
    assert Settings.from_env({"FETCH_WAIT_MAX": "30", "JOB_TIMEOUT": "120"}).fetch_wait_max == 30
    with pytest.raises(ConfigError, match="FETCH_WAIT_MAX"):
        Settings.from_env({"FETCH_WAIT_MAX": "31", "JOB_TIMEOUT": "120"})


def test_a_book_whose_slot_is_far_is_put_aside_without_spending_an_attempt(redis, configure, origin, run_jobs):
    settings = configure(FETCH_RATE="1", FETCH_WAIT_MAX="0.5")
    origin.robots_txt = ""
    limiter = FetchRateLimiter.for_settings(redis, settings)
    limiter.pause(20)  # every slot within reach is taken
    queue = BookQueue(redis, settings)
    queue.enqueue_books([BookId("42")])
    run_jobs()

    job = ServiceJob.fetch(job_id(BookId("42")), connection=redis)
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.enqueue_at_front_on_retry, "it comes back ahead of books not yet tried"
    state = queue.state(BookId("42"))
    assert state.status == BookStatus.QUEUED
    assert state.reason is not None and "request slot" in state.reason
    assert not state.attempts
    assert not origin.fetches() and not origin.robots_fetches
    assert 18 <= state.next_attempt_at - time.time() <= 21
