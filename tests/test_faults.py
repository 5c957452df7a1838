"""Origin faults, end to end: each misbehaviour ends in the right state after the right
number of attempts, spaced by the backoff, and nothing but a parsed book is ever stored."""

from __future__ import annotations

import pytest
import requests
from redis import Redis

from tests.origin import Origin
from tests.processes import Service, wait_until

pytestmark = pytest.mark.e2e

# RETRY_INTERVALS for this module: RQ's scheduler keeps whole seconds, so a retry may come up
# to a second before its interval ends; the gaps checked below allow for that, and no more.
INTERVALS = (2, 4)
BACKOFF = [INTERVALS[0] - 1, INTERVALS[1] - 1]

# book id: (origin behaviour per request, final status, fetches, words of the reason, least gaps between fetches)
# A book's first answer about the origin itself (a challenge, a 429) costs no attempt: it is deferred
# once (RETRY_INTERVALS' first, or Retry-After, and a second); two books cannot pause the fleet.
FREE_FIRST = {"205", "206"}
CASES = {
    "201": (["404"], "not_found", 1, "HTTP 404", None),
    "202": (["410"], "not_found", 1, "HTTP 410", None),
    "203": (["500"], "failed", 3, "HTTP 500", BACKOFF),
    "204": (["503"], "failed", 3, "HTTP 503", BACKOFF),
    "205": (["429:3"], "blocked", 4, "HTTP 429", [3.0, 3.0, 3.0]),
    "206": (["waf"], "blocked", 4, "HTTP 202 with an empty body", [1.0, 1.0, INTERVALS[1] - 1]),
    "207": (["signin"], "blocked", 3, "sign-in page", BACKOFF),
    "208": (["truncated"], "failed", 3, "cut off", BACKOFF),
    "209": (["stall:6"], "failed", 3, "stopped sending the page (read timeout)", BACKOFF),
    "210": (["reset"], "failed", 3, "connection to Goodreads failed", BACKOFF),
    "211": (["redirect:http://evil.example/book/show/211"], "blocked", 3, "another host (evil.example)", BACKOFF),
    "212": (["redirect:/user/sign_in"], "blocked", 3, "not a book page", BACKOFF),
    "213": (["huge:20"], "failed", 3, "larger than", BACKOFF),
    "214": (["503", "503", "page"], "stored", 3, None, BACKOFF),
    "215": (["redirect", "page"], "stored", 2, None, None),
    "216": (["200"], "failed", 3, "no book data", BACKOFF),
}


@pytest.fixture(scope="module")
def outcome(redis_server, tmp_path_factory):
    """Submit every faulty book at once to three workers and wait until all settle."""
    Redis(port=redis_server.port).flushall()
    origin = Origin()
    for book_id, (steps, *_rest) in CASES.items():
        origin.behave(book_id, *steps)
    origin.start()
    service = Service(
        redis_server.url, origin.url, tmp_path_factory.mktemp("faults"), RETRY_INTERVALS=",".join(map(str, INTERVALS))
    )
    service.start_web()
    for _ in range(3):
        service.start_worker()
    links = [f"https://www.goodreads.com/book/show/{book_id}" for book_id in CASES]
    assert requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=10).status_code == 202

    def settled():
        answers = {
            b: requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10)
            for b, link in zip(CASES, links, strict=True)
        }
        if all(response.status_code != 202 for response in answers.values()):
            return answers
        return None

    try:
        answers = wait_until(settled, 120, 0.5, "every book to settle")
        yield answers, origin, Redis(port=redis_server.port)
    finally:
        service.stop()
        origin.stop()
        Redis(port=redis_server.port).flushall()


@pytest.mark.parametrize("book_id", list(CASES), ids=[f"{b}-{CASES[b][0][0]}" for b in CASES])
def test_fault_ends_in_the_right_state(outcome, book_id):
    answers, origin, redis = outcome
    steps, status, fetches, reason, least_gap = CASES[book_id]
    response = answers[book_id]
    body = response.json()
    arrivals = [a.at for a in origin.fetches(book_id)]
    assert len(arrivals) == fetches, (body, arrivals)
    if least_gap:
        gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
        assert all(gap >= least for gap, least in zip(gaps, least_gap, strict=False)), gaps
    if status == "stored":
        assert response.status_code == 200 and body["book_id"] == book_id and body["title"]
        return
    assert body["status"] == status
    assert response.status_code == (404 if status == "not_found" else 502)
    assert reason in body["reason"]
    assert body["attempts"] == fetches - (book_id in FREE_FIRST)
    assert not redis.exists(f"goodreads:book:{book_id}")
