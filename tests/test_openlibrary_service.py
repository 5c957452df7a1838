"""Open Library as the second source, through the real processes: Goodreads answers every book
with a 202 challenge, the books answer 200 with Open Library's record; the challenge lifts, and
Goodreads' record replaces it."""

from __future__ import annotations

import pytest
import requests

from tests.processes import Service, wait_until

pytestmark = pytest.mark.e2e

FOUND = "68428"  # Open Library knows its Goodreads id (tests/fixtures/openlibrary)
NOT_FOUND = "999999992"
LINKS = [f"https://www.goodreads.com/book/show/{book_id}" for book_id in (FOUND, NOT_FOUND)]


def answer(service: Service, link: str) -> requests.Response:
    return requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10)


def test_challenged_books_answer_open_librarys_record_until_goodreads_serves_them(make_service, origin, openlibrary):
    origin.everyone("challenge")
    service = make_service(
        workers=2,
        FALLBACK_SOURCE="openlibrary",
        OPENLIBRARY_BASE_URL=openlibrary.url,
        OPENLIBRARY_RATE="2",
        CONTACT_EMAIL="ops@example.org",
        ORIGIN_PROBE_INTERVALS="3",
        ORIGIN_PAUSE_AFTER="1",
    )
    batch = requests.post(f"{service.url}/parseGoodreadsLinks", json=LINKS, timeout=10).json()

    filled = wait_until(lambda: answer(service, LINKS[0]).status_code == 200, 40, 0.3, "Open Library's record")
    assert filled
    record = answer(service, LINKS[0]).json()
    assert (record["source"], record["title"], record["author"]) == (
        "openlibrary",
        "The Final Empire (Mistborn, Book 1)",
        "Brandon Sanderson",
    )
    assert (record["rating"], record["genres"]) == (None, [])
    wait_until(lambda: len(openlibrary.paths()) >= 3, 20, 0.2, "the unknown book's search")
    unknown = answer(service, LINKS[1])
    assert (unknown.status_code, unknown.json()["status"]) == (202, "paused")
    assert all("ops@example.org" in request.user_agent for request in openlibrary.requests)
    progress = requests.get(f"{service.url}/batches/{batch['batch_id']}", timeout=10).json()
    assert progress["sources"] == {"goodreads": 0, "openlibrary": 1} and progress["counts"]["paused"] == 2

    origin.everyone("page")  # the challenge lifts: Goodreads' records replace Open Library's

    def from_goodreads() -> bool:
        return all(answer(service, link).json().get("source") == "goodreads" for link in LINKS)

    wait_until(from_goodreads, 40, 0.3, "Goodreads' records")
    assert answer(service, LINKS[0]).json()["title"] == "The Long Way Home"
    metrics = requests.get(f"{service.url}/metrics", timeout=10).text
    assert 'goodreads_records_by_source_total{source="openlibrary"} 1.0' in metrics
    assert 'goodreads_records_by_source_total{source="goodreads"} 2.0' in metrics
    assert f"goodreads_openlibrary_requests_total {len(openlibrary.paths())}.0" in metrics
