"""A page or a stored value that would poison a record: the worker stores only plain JSON data,
a lookup answers valid JSON (200, or 502 ``failed`` with a reason), and an export leaves a
refused record out and goes on."""

from __future__ import annotations

import csv
import io
import json
import pickle
import zlib

import pytest
import requests

from books.export import csv_value
from tests.origin import book_page
from tests.processes import wait_until

LINK = "https://www.goodreads.com/book/show/{}"
HALF_AN_EMOJI = "Broken \\ud83d heart"  # as the page's JSON spells it: a lone high surrogate


def strict_json(response) -> dict:
    """The body as a client reads it: UTF-8 (no lone surrogates) and JSON (no NaN)."""
    body = response.content if isinstance(response, requests.Response) else response.get_data()
    return json.loads(body.decode("utf-8"), parse_constant=pytest.fail)


def poisoned_pages(book_id: str) -> bytes:
    if book_id == "901":
        return book_page(book_id, HALF_AN_EMOJI)
    if book_id == "902":
        return book_page(book_id).replace(b'"averageRating":4.12', b'"averageRating":"NaN"')
    return book_page(book_id)


# Stored by someone else (or before the checks): plain-but-odd values and hostile shapes.
ODD_RECORDS = {
    "911": {"title": "nan", "rating": float("nan")},
    "912": {"title": "bytes", "cover_url": b"\x89PNG"},
    "913": {"title": "set", "genres": {"a", "b"}},
    "914": {"title": "tuple keys", ("a", "b"): 1},
    "915": {"title": "deep", "x": [[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]},
    "916": {"title": "huge int", "ratings_count": 10**5000},
}


def bomb() -> bytes:
    """About 1 KB of pickle that reuses one list so much that its JSON would be about 1 GB."""
    level: list = ["x" * 1000]
    for _ in range(3):
        level = [level] * 100
    return pickle.dumps({"title": "bomb", "x": level}, protocol=pickle.HIGHEST_PROTOCOL)


def zlib_bomb() -> bytes:
    """8 KB of zlib stream that would expand to 8 MB, past MAX_RECORD_BYTES (1 MB)."""
    compressor = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(8)) + compressor.flush()


# Stored values that are not records at all, or compressed ones that are not what they seem.
ODD_VALUES = {
    "917": bomb(),
    "919": zlib_bomb(),
    "920": b"\x78\x9c" + b"\xff" * 40,  # a broken zlib stream
    "921": zlib.compress(pickle.dumps({"title": "nan", "rating": float("nan")})),
}


def store_odd_records(redis) -> list[str]:
    for book_id, value in ODD_RECORDS.items():
        redis.set(f"goodreads:book:{book_id}", pickle.dumps(value))
    for book_id, data in ODD_VALUES.items():
        redis.set(f"goodreads:book:{book_id}", data)
    return [*ODD_RECORDS, *ODD_VALUES]


def test_half_a_surrogate_pair_is_stored_replaced_and_answered_as_valid_json(client, origin, run_jobs):
    origin.page = poisoned_pages
    client.post("/parseGoodreadsLinks", json=[LINK.format(901)])
    run_jobs()
    response = client.get("/getBookInfo", query_string={"url": LINK.format(901)})
    assert response.status_code == 200
    assert strict_json(response)["title"] == "Broken \ufffd heart"


def test_a_page_whose_record_holds_nan_fails_that_attempt_with_a_reason(configure, client, origin, run_jobs, redis):
    configure(RETRY_MAX="0")
    origin.page = poisoned_pages
    client.post("/parseGoodreadsLinks", json=[LINK.format(902)])
    run_jobs()
    assert not redis.exists("goodreads:book:902")
    response = client.get("/getBookInfo", query_string={"url": LINK.format(902)})
    body = strict_json(response)
    assert response.status_code == 502 and body["status"] == "failed"
    assert body["reason"] == "the page's record cannot be stored: nan is not a JSON number"


@pytest.mark.parametrize("book_id", [*ODD_RECORDS, *ODD_VALUES])
def test_an_odd_stored_value_answers_502_failed_as_valid_json(client, redis, book_id):
    store_odd_records(redis)
    response = client.get("/getBookInfo", query_string={"url": LINK.format(book_id)})
    body = strict_json(response)
    assert response.status_code == 502 and body["status"] == "failed" and body["reason"]
    assert len(response.get_data()) < 2000


@pytest.mark.parametrize("export_format", ["jsonl", "csv"])
def test_the_export_of_all_books_leaves_out_refused_records_and_goes_on(client, origin, run_jobs, redis, export_format):
    origin.page = poisoned_pages
    client.post("/parseGoodreadsLinks", json=[LINK.format(b) for b in ("900", "901", "903")])
    run_jobs()
    store_odd_records(redis)
    redis.set("goodreads:book:918", pickle.dumps({"title": "odd contributors", "contributors": [{"x": 1}, "y"]}))

    for path in ("/books", f"/batches/{_batch_of(client)}/books"):
        response = client.get(path, query_string={"format": export_format})
        text = response.get_data().decode("utf-8")  # all of it, and valid UTF-8
        if export_format == "jsonl":
            rows = [json.loads(line, parse_constant=pytest.fail) for line in text.splitlines()]
        else:
            rows = list(csv.DictReader(io.StringIO(text)))
        titles = sorted(row["title"] for row in rows)
        expected = ["Broken \ufffd heart", "The Long Way Home", "The Long Way Home"]
        assert titles == (sorted([*expected, "odd contributors"]) if path == "/books" else expected)


def _batch_of(client) -> str:
    return client.post("/parseGoodreadsLinks", json=[LINK.format(b) for b in ("900", "901", "903", "911")]).get_json()[
        "batch_id"
    ]


def test_csv_cells_of_any_plain_value():
    assert csv_value([{"name": "A", "role": "Author"}, {"x": 1}, "y", [1, 2]]) == 'A (Author); {"x": 1}; y; 1; 2'
    assert csv_value({"name": "A", "n": [1, 2]}) == "name: A; n: 1; 2"  # a mapping as the rating distribution is
    assert csv_value(None) == "" and csv_value(4.5) == "4.5"


@pytest.mark.e2e
def test_a_poisoned_page_and_odd_records_break_neither_lookups_nor_exports(make_service, origin, redis):
    origin.page = poisoned_pages
    service = make_service(RETRY_MAX="0")
    requests.post(f"{service.url}/parseGoodreadsLinks", json=[LINK.format(b) for b in ("900", "901")], timeout=10)
    wait_until(lambda: redis.exists("goodreads:book:900", "goodreads:book:901") == 2, 30, 0.2, "both records")
    odd = store_odd_records(redis)

    def lookup(book_id: str) -> requests.Response:
        return requests.get(f"{service.url}/getBookInfo", params={"url": LINK.format(book_id)}, timeout=10)

    assert strict_json(lookup("901"))["title"] == "Broken \ufffd heart"
    for book_id in odd:
        response = lookup(book_id)
        assert response.status_code == 502 and strict_json(response)["status"] == "failed"
    response = requests.get(f"{service.url}/books", timeout=30)
    lines = response.content.decode("utf-8").splitlines()
    assert sorted(json.loads(line)["book_id"] for line in lines) == ["900", "901"]
