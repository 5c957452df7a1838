"""One odd answer from the origin must not stop the fleet: a Retry-After of years, a slot kept
years ahead, a Crawl-delay of days, a robots.txt trickling a byte a second. The real
processes, over HTTP, each with the bound it must keep."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests

from tests.processes import Service, wait_until

pytestmark = pytest.mark.e2e


def links(*ids: int) -> list[str]:
    return [f"https://www.goodreads.com/book/show/{n}" for n in ids]


def lookup(service: Service, link: str) -> requests.Response:
    return requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10)


def stored(service: Service, books: list[str]) -> bool:
    return all(lookup(service, book).status_code == 200 for book in books)


def test_a_retry_after_of_years_holds_the_fleet_origin_wait_max_at_most(make_service, origin, redis):
    origin.behave("1", "429:99999999", "page")
    service = make_service(workers=2, FETCH_RATE="5", ORIGIN_WAIT_MAX="3")
    requests.post(f"{service.url}/parseGoodreadsLinks", json=links(1), timeout=10)
    wait_until(lambda: origin.fetches("1"), 15, message="the 429")
    answered = time.time()
    retrying = wait_until(lambda: lookup(service, links(1)[0]).json().get("next_attempt_at"), 10, 0.1)
    # ORIGIN_WAIT_MAX, and the second RQ's scheduler may run a job early: not 1,157 days
    assert datetime.fromisoformat(retrying).timestamp() - answered <= 3 + 2 + 1

    others = links(*range(2, 7))
    requests.post(f"{service.url}/parseGoodreadsLinks", json=others, timeout=10)
    # the pause (3 s), five requests at 5/s, and room for a loaded machine
    wait_until(lambda: stored(service, others), 15, 0.2, "other users' books within 15 s of the 429")
    wait_until(lambda: stored(service, links(1)), 15, 0.2, "the book asked about to be fetched again")

    # A slot kept 1,157 days ahead (as a version without the cap left it, and a restart kept)
    # is brought back within ORIGIN_WAIT_MAX by the next request.
    redis.set("goodreads:fetch:next-slot", int((time.time() + 1157 * 86400) * 1_000_000))
    requests.post(f"{service.url}/parseGoodreadsLinks", json=links(7), timeout=10)
    wait_until(lambda: stored(service, links(7)), 15, 0.2, "a book after a slot kept years ahead")


def test_a_crawl_delay_of_days_spaces_requests_origin_wait_max_apart(make_service, origin):
    origin.robots_txt = "User-agent: *\nCrawl-delay: 100000\n"
    service = make_service(workers=2, FETCH_RATE="5", ORIGIN_WAIT_MAX="2")
    books = links(11, 12, 13)
    requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10)
    wait_until(lambda: stored(service, books), 30, 0.2, "three books 2 s apart (not 28 hours)")
    arrivals = [arrival.at for arrival in origin.requests()]
    assert len(arrivals) == 4  # robots.txt and the three books
    assert all(1.9 <= later - earlier <= 6 for earlier, later in zip(arrivals, arrivals[1:], strict=False))


def test_a_robots_txt_trickling_a_byte_a_second_costs_books_seconds_not_their_jobs(make_service, origin):
    """Sent whole, this robots.txt takes 5 minutes, each byte within the read timeout: without
    a deadline every job ran to JOB_TIMEOUT (120 s) and no book was stored."""
    origin.robots_txt = "User-agent: *\nAllow: /\n" + "# a slow file\n" * 20
    origin.behave("robots.txt", "drip:1", "robots")
    service = make_service(workers=2, FETCH_CONNECT_TIMEOUT="3", FETCH_READ_TIMEOUT="2")
    books = links(21, 22)
    started = time.monotonic()
    requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10)
    # the deadline (3 + 2 s, a read timeout late at worst), the book's 2 s deferral, the fetches
    wait_until(lambda: stored(service, books), 25, 0.2, "the books within 25 s")
    assert time.monotonic() - started < 25
    assert len(origin.robots_fetches) == 2  # the trickle given up, then the file whole
    assert "JobTimeoutException" not in service.logs()
