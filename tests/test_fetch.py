"""The polite fetch against the local origin, Retry-After parsing, and the shared rate limiter
on the tests' Redis: every way a fetch can end, in process and quickly."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from redis import Redis

from books.links import BookId
from books.origin import OriginState
from books.settings import Settings
from books.status import BookStatus
from tests.origin import Origin
from worker.fetch import (
    THIS_HOST,
    AttemptFailed,
    OriginResponse,
    OriginTrouble,
    fetch_book_page,
    new_session,
    parse_retry_after,
)
from worker.ratelimit import FetchRateLimiter, SlotTooFar

LIMITER_KEY = "test:fetch:next-slot"


def fetch(redis: Redis, settings: Settings, book_id: str = "42") -> OriginResponse:
    limiter = FetchRateLimiter(redis, LIMITER_KEY, settings.fetch_rate)
    return fetch_book_page(BookId(book_id), settings, new_session(settings), limiter)


def test_a_book_page_is_fetched_from_its_canonical_url(redis, settings, origin: Origin):
    response = fetch(redis, settings)
    assert (response.status, response.retry_after, response.url) == (200, None, f"{origin.url}/book/show/42")
    assert b"The Long Way Home" in response.body
    assert [a.path for a in origin.fetches()] == ["/book/show/42"]


@pytest.mark.parametrize(
    ("step", "status", "retry_after"),
    [("404", 404, None), ("503", 503, None), ("429:7", 429, 7.0), ("waf", 202, None)],
)
def test_other_statuses_come_back_for_the_job_to_judge(redis, settings, origin, step, status, retry_after):
    origin.behave("42", step)
    response = fetch(redis, settings)
    assert (response.status, response.retry_after) == (status, retry_after)
    assert len(origin.fetches("42")) == 1


def test_a_same_origin_book_redirect_is_followed(redis, configure, origin):
    origin.behave("42", "redirect", "page")
    response = fetch(redis, configure(FETCH_RATE="2"))
    assert (response.status, response.url) == (200, f"{origin.url}/book/show/42.Some_Title")
    first, second = origin.fetches("42")
    assert [first.path, second.path] == ["/book/show/42", "/book/show/42.Some_Title"]
    # Each hop takes its own slot, 0.5 s apart; a send can reach the origin up to some 0.2 s
    # after its slot on a busy machine, so the arrivals are checked with that much room.
    assert second.at - first.at >= 0.3


# steps, setting overrides, expected status, the reason, fetches made
FAILURES = {
    "too-many-redirects": (["redirect"], {"MAX_REDIRECTS": "2"}, BookStatus.FAILED, "more than 2 redirects", 3),
    "other-host": (
        ["redirect:http://evil.example/book/show/42"],
        {},
        BookStatus.BLOCKED,
        "Goodreads redirected to another host (evil.example)",
        1,
    ),
    "scheme-relative-other-host": (
        ["redirect://evil.example/book/show/42"],
        {},
        BookStatus.BLOCKED,
        "Goodreads redirected to another host (evil.example)",
        1,
    ),
    "not-a-book-path": (
        ["redirect:/user/sign_in"],
        {},
        BookStatus.BLOCKED,
        "Goodreads redirected to '/user/sign_in', not a book page",
        1,
    ),
    "reset": (["reset"], {}, BookStatus.FAILED, "connection to Goodreads failed: ConnectionError", 1),
    "truncated": (["truncated"], {}, BookStatus.FAILED, "the page was cut off: ProtocolError", 1),
    "stall": (
        ["stall:1"],
        {"FETCH_READ_TIMEOUT": "0.2"},
        BookStatus.FAILED,
        "Goodreads stopped sending the page (read timeout)",
        1,
    ),
    "trickle": (
        ["trickle:1"],
        {"FETCH_CONNECT_TIMEOUT": "0.1", "FETCH_READ_TIMEOUT": "0.4"},
        BookStatus.FAILED,
        "Goodreads sent the page too slowly",
        1,
    ),
    "declared-too-large": (
        ["page"],
        {"MAX_PAGE_BYTES": "1000"},
        BookStatus.FAILED,
        "the page is larger than 1000 bytes",
        1,
    ),
    "streamed-too-large": (
        ["huge:1"],
        {"MAX_PAGE_BYTES": "100000"},
        BookStatus.FAILED,
        "the page is larger than 100000 bytes",
        1,
    ),
}


@pytest.mark.parametrize(("steps", "overrides", "status", "reason", "fetches"), FAILURES.values(), ids=FAILURES)
def test_a_fetch_that_yields_no_page_says_why(redis, configure, origin, steps, overrides, status, reason, fetches):
    origin.behave("42", *steps)
    with pytest.raises(AttemptFailed) as failure:
        fetch(redis, configure(**overrides))
    assert (failure.value.status, failure.value.reason, failure.value.retry_after) == (status, reason, None)
    assert len(origin.fetches()) == fetches


def test_no_answer_in_time_is_the_origins_trouble_not_the_books(redis, configure, origin):
    origin.behave("42", "slow:1")
    with pytest.raises(OriginTrouble) as trouble:
        fetch(redis, configure(FETCH_READ_TIMEOUT="0.2"))
    assert (trouble.value.state, trouble.value.reason, trouble.value.retry_after) == (
        OriginState.UNREACHABLE,
        "Goodreads is unreachable: no answer within 0.2 s",
        None,
    )
    assert len(origin.fetches()) == 1


def test_an_origin_that_is_down_is_unreachable(redis, configure):
    unused = Origin()
    unused.server.server_close()  # its port, no longer listening
    settings = configure(GOODREADS_BASE_URL=unused.url)
    with pytest.raises(OriginTrouble) as trouble:
        fetch(redis, settings)
    assert (trouble.value.state, trouble.value.reason) == (
        OriginState.UNREACHABLE,
        f"Goodreads is unreachable: connection refused, {THIS_HOST}",
    )


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after_in_seconds(header, seconds):
    assert parse_retry_after(header, 3600) == seconds


def test_retry_after_as_a_future_http_date():
    assert 55 <= parse_retry_after(http_date(60), 3600) <= 60


@pytest.mark.parametrize(
    "header", ["99999999", "9" * 400, http_date(1157 * 24 * 3600)], ids=["seconds", "400 digits", "a date"]
)
def test_a_retry_after_of_years_is_capped(header):
    assert parse_retry_after(header, 3600) == 3600


def test_an_origin_asking_for_a_years_pause_gets_origin_wait_max(redis, configure, origin):
    origin.behave("42", "429:99999999")
    assert fetch(redis, configure(ORIGIN_WAIT_MAX="90")).retry_after == 90


def test_a_page_trickling_a_byte_at_a_time_is_refused_at_the_deadline(redis, configure, origin):
    """Each byte comes well within the read timeout; the page would take some 10 minutes."""
    origin.behave("42", "drip:0.02")
    started = time.monotonic()
    with pytest.raises(AttemptFailed) as failure:
        fetch(redis, configure(FETCH_CONNECT_TIMEOUT="0.5", FETCH_READ_TIMEOUT="0.5"))
    assert failure.value.reason == "Goodreads sent the page too slowly"
    assert 1.0 <= time.monotonic() - started < 3


def redis_now(redis: Redis) -> float:
    seconds, microseconds = redis.time()
    return seconds + microseconds / 1_000_000


def test_no_rate_means_no_waiting_and_no_key(redis):
    limiter = FetchRateLimiter(redis, LIMITER_KEY, 0)
    limiter.pause(30)
    assert [limiter.wait_for_slot() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert not redis.exists(LIMITER_KEY)


def test_requests_are_spaced_by_the_rate_across_limiters_sharing_the_key(redis):
    """Two limiters stand for two worker processes: they share one pace."""
    rate = 50
    one, other = FetchRateLimiter(redis, LIMITER_KEY, rate), FetchRateLimiter(redis, LIMITER_KEY, rate)
    interval = 1 / rate * 1.02
    started = time.monotonic()
    for limiter in (one, other, one, other):
        limiter.wait_for_slot()
    assert time.monotonic() - started >= 3 * interval - 0.002
    next_slot = int(redis.get(LIMITER_KEY)) / 1_000_000
    assert 0 < next_slot - redis_now(redis) <= interval
    assert 60_000 <= redis.pttl(LIMITER_KEY) <= 61_000  # kept a minute past the slot, then gone


def test_a_pause_and_a_crawl_delay_are_capped_and_a_slot_kept_too_far_is_brought_back(redis):
    limiter = FetchRateLimiter(redis, LIMITER_KEY, 1000, wait_max=1, pause_max=5)
    limiter.pause(99_999_999)
    assert 4.9 <= int(redis.get(LIMITER_KEY)) / 1_000_000 - redis_now(redis) <= 5
    far = (redis_now(redis) + 100_000_000) * 1_000_000  # kept by a version that did not cap
    redis.set(LIMITER_KEY, int(far))
    assert 3.9 <= limiter.room_in() <= 4.01
    with pytest.raises(SlotTooFar) as too_far:
        limiter.wait_for_slot()
    assert 4.9 <= too_far.value.wait <= 5.01
    assert 4.9 <= int(redis.get(LIMITER_KEY)) / 1_000_000 - redis_now(redis) <= 5.01  # and kept there
    assert FetchRateLimiter(redis, LIMITER_KEY, 1000, min_interval=100_000, pause_max=5).interval_us == 5_000_000


def test_slots_taken_within_a_wait_longer_than_the_pause_cap_are_not_pulled_back(redis):
    limiter = FetchRateLimiter(redis, LIMITER_KEY, 10, wait_max=0.6, pause_max=0.1)
    redis.set(LIMITER_KEY, int((redis_now(redis) + 0.5) * 1_000_000))  # slots other workers took
    assert 0.4 <= limiter.wait_for_slot() <= 0.5  # not about 0.2 (the pause cap and an interval)


def test_a_pause_holds_the_next_request_back(redis):
    limiter = FetchRateLimiter(redis, LIMITER_KEY, 1000)
    limiter.pause(30)
    assert 29.9 <= int(redis.get(LIMITER_KEY)) / 1_000_000 - redis_now(redis) <= 30
    limiter.pause(0.3)  # a shorter pause asked later does not cut the longer one short
    assert 29.9 <= int(redis.get(LIMITER_KEY)) / 1_000_000 - redis_now(redis) <= 30

    redis.delete(LIMITER_KEY)
    limiter.pause(0.3)
    assert 0.28 <= limiter.wait_for_slot() <= 0.3
