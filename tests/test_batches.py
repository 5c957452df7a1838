"""Batches and exports, end to end: progress per link, counts per status, streamed records."""

from __future__ import annotations

import csv
import io
import json

import pytest
import requests

from books.export import csv_value
from tests.processes import wait_until

pytestmark = pytest.mark.e2e


def post(service, links: list[str]) -> dict:
    return requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=10).json()


def test_a_batch_reports_each_link_and_finishes(make_service, origin):
    service = make_service(RETRY_MAX="0")
    origin.behave("702", "404")
    origin.behave("703", "signin")
    answer = post(
        service,
        [
            "goodreads.com/book/show/701",
            "https://m.goodreads.com/book/show/701",
            "goodreads.com/book/show/702",
            "goodreads.com/book/show/703",
            "https://example.com/x",
        ],
    )
    batch_id = answer["batch_id"]

    def finished():
        body = requests.get(f"{service.url}/batches/{batch_id}", timeout=10).json()
        return body if body["finished"] else None

    body = wait_until(finished, 30, 0.2, "the batch to finish")
    assert body["counts"] == {
        "queued": 0,
        "running": 0,
        "retrying": 0,
        "paused": 0,
        "stored": 1,
        "not_found": 1,
        "blocked": 1,
        "failed": 0,
        "unknown": 0,
        "rejected": 1,
    }
    assert [link["status"] for link in body["links"]] == ["stored", "stored", "not_found", "blocked", "rejected"]
    assert body["links"][3]["reason"] == "Goodreads answered with a sign-in page"
    assert body["links"][4]["reason"] == "'example.com' is not a Goodreads host"


def test_a_book_shared_by_two_batches_is_fetched_once_and_counts_in_both(make_service, origin):
    service = make_service(workers=0)
    first = post(service, ["goodreads.com/book/show/711", "goodreads.com/book/show/712"])["batch_id"]
    second = post(service, ["goodreads.com/book/show/712"])["batch_id"]
    before = requests.get(f"{service.url}/batches/{second}", timeout=10).json()
    assert before["finished"] is False and before["counts"]["queued"] == 1
    service.start_worker()
    for batch_id, stored in ((first, 2), (second, 1)):
        wait_until(
            lambda b=batch_id: requests.get(f"{service.url}/batches/{b}", timeout=10).json()["finished"],
            30,
            0.2,
            "the batch to finish",
        )
        assert requests.get(f"{service.url}/batches/{batch_id}", timeout=10).json()["counts"]["stored"] == stored
    assert len(origin.fetches("712")) == 1


def test_batch_records_stream_as_csv_and_jsonl(make_service, origin):
    service = make_service()
    batch_id = post(service, [f"goodreads.com/book/show/{n}" for n in (721, 722, 723)])["batch_id"]
    wait_until(
        lambda: requests.get(f"{service.url}/batches/{batch_id}", timeout=10).json()["finished"],
        30,
        0.2,
        "the batch to finish",
    )

    lines = requests.get(f"{service.url}/batches/{batch_id}/books?format=jsonl", timeout=10)
    assert lines.headers["Content-Type"] == "application/x-ndjson"
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert [r["book_id"] for r in records] == ["721", "722", "723"]

    response = requests.get(f"{service.url}/batches/{batch_id}/books?format=csv", timeout=10)
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="batch-' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["book_id"] for row in rows] == ["721", "722", "723"]
    assert rows[0]["authors"] == "Ann Writer; Tom Translator; Ida Illustrator"
    assert rows[0]["contributors"] == "Ann Writer (Author); Tom Translator (Translator); Ida Illustrator (Illustrator)"
    assert rows[0]["published"] == ""  # null
    assert rows[0]["description"] == records[0]["description"]  # newlines survive CSV quoting

    everything = requests.get(f"{service.url}/books?format=jsonl", timeout=10).text.splitlines()
    assert sorted(json.loads(line)["book_id"] for line in everything) == ["721", "722", "723"]


@pytest.mark.parametrize(
    "path",
    ["/batches/nope", "/batches/0123456789abcdef0123456789abcdef", "/batches/0123456789abcdef0123456789abcdef/books"],
)
def test_unknown_batches_are_404_json(make_service, path):
    service = make_service(workers=0)
    response = requests.get(f"{service.url}{path}", timeout=10)
    assert response.status_code == 404 and response.json()["error"] == "unknown_batch"


def test_an_unknown_export_format_is_400(make_service):
    service = make_service(workers=0)
    response = requests.get(f"{service.url}/books?format=xml", timeout=10)
    assert response.status_code == 400 and response.json()["error"] == "invalid_format"


def test_csv_values():
    assert csv_value(None) == ""
    assert csv_value(["a", "b"]) == "a; b"
    assert csv_value([{"name": "A", "role": "Author"}]) == "A (Author)"
    assert csv_value(4.5) == "4.5"


def test_batches_expire_after_batch_ttl(make_service):
    service = make_service(workers=0, BATCH_TTL="1")
    batch_id = post(service, ["goodreads.com/book/show/731"])["batch_id"]
    assert requests.get(f"{service.url}/batches/{batch_id}", timeout=10).status_code == 200
    wait_until(
        lambda: requests.get(f"{service.url}/batches/{batch_id}", timeout=10).status_code == 404,
        5,
        0.2,
        "the batch to expire",
    )
