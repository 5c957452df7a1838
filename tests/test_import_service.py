"""A Goodreads library export imported into the running service: gunicorn, an rq worker, Redis
and the local origin, by a plain POST and by the command-line client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from books.hints import BookHints, Hints
from books.links import BookId
from tests.processes import ROOT, wait_until
from tests.test_imports import EXPORT

pytestmark = pytest.mark.e2e
EXPORT_BOOKS = {"44767458", "5907", "18144590", "13079982", "2767052"}


def record_of(service, book_id: str) -> dict | None:
    response = requests.get(
        f"{service.url}/getBookInfo", params={"url": f"goodreads.com/book/show/{book_id}"}, timeout=10
    )
    return response.json() if response.status_code == 200 else None


def test_every_valid_book_of_a_posted_export_is_stored_with_its_hints(make_service, origin, redis):
    service = make_service()
    response = requests.post(
        f"{service.url}/parseGoodreadsLinks",
        data=EXPORT.read_bytes(),  # a BOM, CRLF, quoted commas and quotes, a review over three lines, bad rows
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["counts"]["queued"], body["counts"]["rejected"]) == (5, 2)
    assert [(result["line"], result["reason"]) for result in body["results"] if result["outcome"] == "rejected"] == [
        (6, "line 6: the row has no Book Id"),
        (10, "line 10: the book id 'n/a' is not a positive number of at most 12 digits"),
    ]

    def every_record() -> dict | None:
        found = {book: record_of(service, book) for book in EXPORT_BOOKS}
        return found if all(found.values()) else None

    records = wait_until(every_record, 60, 0.2, "every book of the export stored")
    assert {book: record["book_id"] for book, record in records.items()} == {book: book for book in EXPORT_BOOKS}
    assert {arrival.book_id for arrival in origin.arrivals} == EXPORT_BOOKS  # fetched once each, nothing else
    assert len(origin.fetches()) == len(EXPORT_BOOKS)
    assert Hints(redis, "goodreads", 1).load(BookId("5907")) == BookHints(
        "The Hobbit, or There and Back Again", "J.R.R. Tolkien", "9780618260300"
    )
    batch = requests.get(f"{service.url}/batches/{body['batch_id']}", timeout=10).json()
    assert batch["finished"] and (batch["counts"]["stored"], batch["counts"]["rejected"]) == (5, 2)


def test_the_client_imports_an_export_and_saves_its_records(make_service, tmp_path):
    service = make_service()
    out = tmp_path / "books.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "client", "import", str(EXPORT), "--server", service.url, "--wait", "--out", str(out)]
        + ["--interval", "0.3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=service.env,
    )
    assert result.returncode == 1, result.stderr  # two rows without a usable Book Id
    assert "Sent 7 rows in 1 batch: " in result.stderr
    assert "100%" in result.stderr and "stored=5" in result.stderr  # the progress bar
    assert result.stdout.splitlines() == [
        "Done: 5 stored, 2 rejected",
        "      1 rejected: line 6: the row has no Book Id",
        "      1 rejected: line 10: the book id 'n/a' is not a positive number of at most 12 digits",
    ]
    assert {json.loads(line)["book_id"] for line in out.read_text().splitlines()} == EXPORT_BOOKS
