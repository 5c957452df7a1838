"""Many workers share a low FETCH_RATE with a short JOB_TIMEOUT: a job never sleeps longer than
FETCH_WAIT_MAX for its request slot, a farther one is left free and the book put aside without
spending an attempt, so no job times out and the origin never sees more than FETCH_RATE a second.
The real processes (the Procfile's worker, ``python -m worker.supervisor``), over HTTP."""

from __future__ import annotations

import time

import pytest
import requests
from redis import Redis

from tests.processes import wait_until
from tests.test_politeness import most_in_any_second

pytestmark = [pytest.mark.e2e, pytest.mark.serial]

WORKERS = 8
BOOKS = 40


def test_eight_workers_share_two_requests_a_second_without_a_timeout(make_service, origin, redis: Redis):
    # Eight workers at two requests a second: sleeping for its slot, a job would wait about
    # 8 / 2 = 4 s, more than JOB_TIMEOUT.
    service = make_service(
        workers=WORKERS, FETCH_RATE="2", JOB_TIMEOUT="3", FETCH_WAIT_MAX="0.5", RETRY_MAX="0", RETRY_INTERVALS=""
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
    # The origin stamps arrivals in this test's process, in a handler thread, on a host shared
    # with the workers: its clock reads tens of milliseconds late at times. So any window of
    # 0.95 s counts as a second here (the limiter's own margin is 2 %: 0.51 s between slots).
    assert most_in_any_second(requests_at_origin, window=0.95) <= 2
    # Every attempt counted was the one that stored the book: the deferrals spent none.
    assert [int(redis.hget(f"goodreads:status:{book_id}", "attempts")) for book_id in book_ids] == [1] * BOOKS
    assert not redis.zcard("rq:failed:bookInfoParser")
    logs = service.logs()
    assert "JobTimeoutException" not in logs
    deferred = logs.count("scheduled for retry")
    assert deferred > 0, "no job was put aside: the test did not make workers wait for slots"
    # The shared rate was used, not wasted: 41 requests at 2 a second take 20 s.
    span = max(requests_at_origin) - min(requests_at_origin)
    assert span < (len(requests_at_origin) - 1) / 2 * 1.02 * 1.5
    print(
        f"{BOOKS} books through {WORKERS} workers in {took:.1f} s; {len(requests_at_origin)} requests in "
        f"{span:.1f} s, at most {most_in_any_second(requests_at_origin)} in any second; {deferred} deferrals"
    )
