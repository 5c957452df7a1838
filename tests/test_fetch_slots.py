"""Many workers share a low FETCH_RATE with a short JOB_TIMEOUT: a job never sleeps longer than
FETCH_WAIT_MAX for its request slot, a farther one is left free and the book put aside without
spending an attempt, so no job times out and the origin never gets more than FETCH_RATE allows.
The real processes (the Procfile's worker, ``python -m worker.supervisor``), over HTTP.

How the rate is judged at the origin. The limiter spaces its send stamps in Redis 1.02 /
FETCH_RATE apart, but a request reaches the origin a little after its stamp: requests still
builds and writes it, and on two cores shared by twelve workers one sender can be held up
100-200 ms longer than the next. The origin's stamps are not the cause (the kernel's own
receive stamps, SO_TIMESTAMPNS, agreed with them within 20 ms), so two arrivals 0.34-0.45 s
apart do happen, and "at most FETCH_RATE in any second" would fail on them while the fleet
keeps its pace. The bound asserted is a token bucket holding two requests instead of one:
between any two arrivals, the requests counted exceed FETCH_RATE times the time between
them by less than one. One late send cannot break it (it would have to be late by a whole
interval, 0.5 s); a rate not shared breaks it at once (twelve workers sending together), and
a shared rate even 5 % too high breaks it over the run's 40 intervals."""

from __future__ import annotations

import time
from itertools import accumulate

import pytest
import requests
from redis import Redis

from tests.processes import wait_until
from tests.test_politeness import most_in_any_second

WORKERS = 12
BOOKS = 40
RATE = 2


def beyond_rate(times: list[float], rate: float) -> float:
    """The most requests beyond ``rate`` between any two of ``times``: the intervals from one to
    the other less ``rate`` times the seconds between them. Requests exactly ``1 / rate`` apart
    score 0, any two at once 1 at least."""
    points = [count - rate * at for count, at in enumerate(sorted(times))]
    return max(later - lowest for lowest, later in zip(accumulate(points, min), points[1:], strict=False))


def test_beyond_rate_forgives_one_late_request_but_not_a_burst_or_a_faster_pace():
    paced = [n * 0.51 for n in range(41)]
    assert beyond_rate(paced, RATE) <= 0
    late = paced[:10] + [paced[10] + 0.4] + paced[11:]  # sent 0.4 s after its stamp: 0.11 s before the next
    assert 0 < beyond_rate(late, RATE) < 1
    assert beyond_rate([0.0] * 12 + paced[12:], RATE) >= 1  # twelve workers, each with its own slots
    assert beyond_rate([n / (RATE * 1.05) for n in range(41)], RATE) >= 1


@pytest.mark.e2e
@pytest.mark.serial
def test_twelve_workers_share_two_requests_a_second_without_a_timeout(make_service, origin, redis: Redis):
    # Twelve workers at two requests a second: sleeping for its slot, a job would wait about
    # 12 / 2 = 6 s, twice JOB_TIMEOUT.
    service = make_service(
        workers=WORKERS, FETCH_RATE=str(RATE), JOB_TIMEOUT="3", FETCH_WAIT_MAX="0.5", RETRY_MAX="0", RETRY_INTERVALS=""
    )
    book_ids = [str(5000 + n) for n in range(BOOKS)]
    links = [f"https://www.goodreads.com/book/show/{book_id}" for book_id in book_ids]
    started = time.monotonic()
    assert requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=10).status_code == 202

    def all_stored() -> bool:
        # Redis's index, not 40 HTTP requests a poll: the test's own load stays off the workers' CPU.
        assert not redis.zcard("rq:failed:bookInfoParser")
        return redis.zcard("goodreads:stored-at") == BOOKS

    wait_until(all_stored, 60, 0.5, "every book to be stored")
    took = time.monotonic() - started

    answers = [requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10) for link in links]
    assert [answer.status_code for answer in answers] == [200] * BOOKS
    requests_at_origin = [arrival.at for arrival in origin.requests()]  # robots.txt's too
    assert sorted(arrival.book_id for arrival in origin.fetches()) == sorted(book_ids), "each page fetched once"
    excess = beyond_rate(requests_at_origin, RATE)
    assert excess < 1, "the origin got more than FETCH_RATE allows (see the module's docstring)"
    # Every attempt counted was the one that stored the book: the deferrals spent none.
    assert [int(redis.hget(f"goodreads:status:{book_id}", "attempts")) for book_id in book_ids] == [1] * BOOKS
    assert not redis.zcard("rq:failed:bookInfoParser")
    logs = service.logs()
    assert "JobTimeoutException" not in logs
    deferred = logs.count("scheduled for retry")
    assert deferred > 0, "no job was put aside: the test did not make workers wait for slots"
    # The shared rate was used, not wasted: 41 requests at 2 a second take 20 s.
    span = max(requests_at_origin) - min(requests_at_origin)
    assert span < (len(requests_at_origin) - 1) / RATE * 1.02 * 1.5
    print(
        f"{BOOKS} books through {WORKERS} workers in {took:.1f} s; {len(requests_at_origin)} requests in "
        f"{span:.1f} s, {excess:.2f} beyond the rate at most, {most_in_any_second(requests_at_origin)} in "
        f"the busiest second; {deferred} deferrals"
    )
