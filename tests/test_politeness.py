"""Politeness: FETCH_RATE holds across worker processes, measured where it matters, at the origin."""

from __future__ import annotations

import pytest
import requests

from tests.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.serial]


def most_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for other in times[i:] if other - start < 1) for i, start in enumerate(times))


def test_four_workers_stay_within_five_requests_a_second(make_service, origin):
    service = make_service(workers=4, FETCH_RATE="5")
    book_ids = [str(3000 + n) for n in range(30)]
    links = [f"https://www.goodreads.com/book/show/{book_id}" for book_id in book_ids]
    assert requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=10).status_code == 202

    def stored() -> bool:
        return all(
            requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10).status_code == 200
            for link in links
        )

    wait_until(stored, 60, 0.5, "every book to be stored")
    arrivals = [a.at for a in origin.fetches()]
    assert sorted(a.book_id for a in origin.fetches()) == sorted(book_ids)
    assert most_in_any_second(arrivals) <= 5
    duration = max(arrivals) - min(arrivals)
    assert duration >= (len(arrivals) - 1) / 5 * 0.98  # 29 gaps of 0.2 s at least
    print(f"30 fetches in {duration:.2f} s, at most {most_in_any_second(arrivals)} in any second")


def test_a_429_pauses_every_worker(make_service, origin):
    service = make_service(workers=2, FETCH_RATE="20")
    origin.behave("4000", "429:3", "page")
    links = [f"https://www.goodreads.com/book/show/{4000 + n}" for n in range(6)]
    requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=10)
    wait_until(lambda: len(origin.fetches()) >= 7, 30, 0.2, "all books to be fetched")
    arrivals = sorted(a.at for a in origin.fetches())
    refused_at = origin.fetches("4000")[0].at
    after = [at for at in arrivals if at > refused_at]
    # A slot taken before the 429 may still be used (one per other worker); then nobody asks
    # Goodreads again until the 3 s pause is over.
    in_flight = [at for at in after if at - refused_at < 0.2]
    assert len(in_flight) <= 1
    assert min(at for at in after if at not in in_flight) - refused_at >= 3.0
