"""The web API in process: Flask's test client on the tests' own Redis, jobs run in process
against the local origin. Every answer that needs no real process, checked exactly."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import request
from flask.testing import FlaskClient
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.test import TestResponse

from app import create_app
from app.api import _url_parameters
from books.export import in_pieces
from books.record import MISSING_VALUES, RECORD_FIELDS
from books.store import BookStore
from tests.origin import book_page
from tests.processes import free_port
from worker.parser import parse_book_page

QUEUE_KEY = "rq:queue:bookInfoParser"
NO_OUTCOMES = {"queued": 0, "already_queued": 0, "stored": 0, "not_found": 0}


def leftover_keys(redis) -> list[bytes]:
    """What a request left in Redis, but the client's POST budget counter, which counts refused
    requests too (and expires with its window)."""
    return [key for key in redis.keys("*") if not key.startswith(b"goodreads:budget:post:")]


def book_link(book_id: str) -> str:
    return f"https://www.goodreads.com/book/show/{book_id}"


BOOK = book_link("42")


@pytest.fixture
def client_with(configure) -> Iterator[Callable[..., FlaskClient]]:
    """A test client of an app built with these setting overrides."""
    apps = []

    def make(**overrides: str) -> FlaskClient:
        app = create_app(configure(**overrides))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["record_cache"].close()


def post_links(client: FlaskClient, links: Any, query: str = "") -> TestResponse:
    return client.post(f"/parseGoodreadsLinks{query}", json=links)


def fetch_books(client: FlaskClient, run_jobs, *book_ids: str) -> str:
    """Post the books' links, run their jobs against the origin; return the batch id."""
    response = post_links(client, [book_link(book_id) for book_id in book_ids])
    assert response.status_code == 202, response.json
    run_jobs()
    return response.json["batch_id"]


def assert_error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """The response is the service's JSON error with this status and code; return its body."""
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    body = response.json
    assert body["error"] == code
    assert body["message"]
    return body


def outcome_of(client: FlaskClient, link: str, query: str = "") -> str:
    response = post_links(client, [link], query)
    assert response.status_code == 202, response.json
    return response.json["results"][0]["outcome"]


def book_info(client: FlaskClient, link: str = BOOK) -> TestResponse:
    return client.get("/getBookInfo", query_string={"url": link})


def recent(iso_time: str) -> bool:
    return abs(datetime.fromisoformat(iso_time).timestamp() - time.time()) < 60


def future(iso_time: str) -> bool:
    return datetime.fromisoformat(iso_time).timestamp() > time.time()


# POST /parseGoodreadsLinks


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"hello", "invalid_json"),
        (b'["https://www.goodreads.com/book/show/42"', "invalid_json"),
        (b'["\xff\xfe"]', "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b"[" + b"9" * 5000 + b"]", "invalid_json"),
        (b"", "not_an_array"),
        (b"null", "not_an_array"),
        (b'"https://www.goodreads.com/book/show/42"', "not_an_array"),
        (b'{"links": ["https://www.goodreads.com/book/show/42"]}', "not_an_array"),
        (b"[]", "no_links"),
    ],
    ids=["not json", "truncated", "not utf-8", "too deep", "huge number", "empty", "null", "string", "object", "[]"],
)
def test_a_body_that_is_not_an_array_of_links_is_refused(client, redis, body, code):
    assert_error(client.post("/parseGoodreadsLinks", data=body), 400, code)
    assert leftover_keys(redis) == []


def test_more_links_than_the_limit_are_refused_whole(client_with, redis):
    client = client_with(MAX_LINKS_PER_REQUEST="2")
    body = assert_error(post_links(client, [BOOK] * 3), 413, "too_many_links")
    assert body["message"] == "at most 2 links per request; split the list"
    assert leftover_keys(redis) == []
    assert post_links(client, [BOOK] * 2).status_code == 202


def test_a_body_over_the_byte_limit_is_refused_as_json(client_with, redis):
    client = client_with(MAX_REQUEST_BYTES="100")
    links = [book_link(str(n)) for n in (1, 2, 3)]  # three are over 100 bytes of JSON, two under
    assert_error(post_links(client, links), 413, "request_entity_too_large")
    assert leftover_keys(redis) == []
    assert post_links(client, links[:2]).status_code == 202


def test_a_request_without_any_valid_link_is_refused_with_each_reason(client, redis):
    body = assert_error(post_links(client, ["x", 7, "goodreads.com/book/show/0"]), 400, "no_valid_links")
    assert body["counts"] == {"links": 3, "books": 0, **NO_OUTCOMES, "rejected": 3}
    assert body["results"] == [
        {"link": "x", "outcome": "rejected", "reason": "'x' is not a Goodreads host"},
        {"link": "7", "outcome": "rejected", "reason": "a link must be a string, not a number"},
        {
            "link": "goodreads.com/book/show/0",
            "outcome": "rejected",
            "reason": "the book id '0' is not a positive number of at most 12 digits",
        },
    ]
    assert leftover_keys(redis) == [], "a refused request creates no batch and no job"


def test_valid_links_are_queued_and_invalid_ones_reported_beside_them(client, redis):
    response = post_links(client, [BOOK, "https://example.com/book/show/1", None, book_link("43"), "a\tb"])
    assert response.status_code == 202
    body = response.json
    assert body["message"] == "2 books are scheduled for info parsing."
    assert len(body["batch_id"]) == 32
    assert body["counts"] == {"links": 5, "books": 2, **NO_OUTCOMES, "queued": 2, "rejected": 3}
    assert body["results"] == [
        {"link": BOOK, "book_id": "42", "url": BOOK, "job_id": "book-42", "outcome": "queued"},
        {
            "link": "https://example.com/book/show/1",
            "outcome": "rejected",
            "reason": "'example.com' is not a Goodreads host",
        },
        {"link": "null", "outcome": "rejected", "reason": "a link must be a string, not null"},
        {"link": book_link("43"), "book_id": "43", "url": book_link("43"), "job_id": "book-43", "outcome": "queued"},
        {
            "link": "a\tb",
            "outcome": "rejected",
            "reason": "the link contains spaces, control characters or backslashes",
        },
    ]
    assert redis.lrange(QUEUE_KEY, 0, -1) == [b"book-42", b"book-43"]


def test_one_book_in_several_link_forms_gets_one_job(client, redis):
    forms = [
        BOOK,
        "goodreads.com/book/show/42-the-long-way-home",
        "http://m.goodreads.com/en/book/show/42.The_Long_Way_Home/?ref=nav#top",
        "  https://WWW.goodreads.com/book/show/042 ",
    ]
    body = post_links(client, forms).json
    assert body["message"] == "1 book is scheduled for info parsing."
    assert body["counts"] == {"links": 4, "books": 1, **NO_OUTCOMES, "queued": 1, "rejected": 0}
    assert [(result["link"], result["book_id"], result["outcome"]) for result in body["results"]] == [
        (form, "42", "queued") for form in forms
    ]
    assert redis.lrange(QUEUE_KEY, 0, -1) == [b"book-42"]


def test_a_book_is_queued_once_then_answered_from_its_record_until_refreshed(client, origin, run_jobs):
    assert outcome_of(client, BOOK) == "queued"
    assert outcome_of(client, BOOK) == "already_queued"
    run_jobs()
    second_look = post_links(client, [BOOK]).json
    assert second_look["results"][0]["outcome"] == "stored"
    assert second_look["message"] == "0 books are scheduled for info parsing."
    assert outcome_of(client, BOOK, "?refresh=true") == "queued"
    run_jobs()
    assert len(origin.fetches("42")) == 2


def test_a_record_older_than_refresh_after_is_fetched_again(client_with, run_jobs):
    client = client_with(REFRESH_AFTER="0")
    fetch_books(client, run_jobs, "42")
    assert outcome_of(client, BOOK) == "queued"


def test_a_book_goodreads_does_not_have_is_not_asked_for_again_while_fresh(client, origin, run_jobs):
    origin.behave("404", "404")
    fetch_books(client, run_jobs, "404")
    assert outcome_of(client, book_link("404")) == "not_found"
    assert len(origin.fetches("404")) == 1
    assert outcome_of(client, book_link("404"), "?refresh=1") == "queued"


@pytest.mark.parametrize(("flag", "outcome"), [("true", "queued"), ("YES", "queued"), ("0", "stored"), ("", "stored")])
def test_the_refresh_flag_takes_true_or_false_words(client, redis, flag, outcome):
    BookStore(redis).save_record("42", {"book_id": "42"})
    assert outcome_of(client, BOOK, f"?refresh={flag}") == outcome


def test_an_invalid_refresh_flag_is_refused(client, redis):
    assert_error(post_links(client, [BOOK], "?refresh=maybe"), 400, "invalid_refresh")
    assert leftover_keys(redis) == []


def test_a_long_link_is_echoed_shortened_in_the_answer_and_the_batch(client):
    link = BOOK + "?from=" + "x" * 400
    body = post_links(client, [link]).json
    assert body["results"][0]["link"] == link[:300]
    assert body["results"][0]["book_id"] == "42"
    assert client.get(f"/batches/{body['batch_id']}").json["links"][0]["link"] == link[:300]


# GET /getBookInfo


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ({}, "missing_url", "give the book's link as ?url=<link>"),
        ([("url", BOOK), ("url", BOOK)], "repeated_url", "give exactly one url parameter"),
        ({"url": ""}, "invalid_link", "the link is empty"),
        ({"url": "https://example.com/book/show/42"}, "invalid_link", "'example.com' is not a Goodreads host"),
        ({"url": "ftp://www.goodreads.com/book/show/42"}, "invalid_link", "the scheme 'ftp' is not http or https"),
    ],
    ids=["missing", "repeated", "empty", "other host", "other scheme"],
)
def test_a_lookup_without_exactly_one_valid_link_is_refused(client, query, code, message):
    assert assert_error(client.get("/getBookInfo", query_string=query), 400, code)["message"] == message


@pytest.mark.parametrize(
    "query",
    [
        b"url=https%3A%2F%2Fwww.goodreads.com%2Fbook%2Fshow%2F42",
        b"url=goodreads.com/book/show/42?a=b",
        b"url=a+b%20c%2B",
        b"url=%C3%A9%E2%82%AC",
        b"url=%FF%FEx",  # not UTF-8: the bytes stay percent-encoded
        b"url=%zz%4",
        b"url=",
        b"url=x=y",
        b"url=\xc3\xa9",
        b"url=1&url=2",
        b"url=1&ref=2",
        b"ref=2&url=1",
        b"%75rl=1",
        b"url",
        b"URL=1",
        b"",
    ],
)
def test_the_link_is_read_from_the_query_as_flask_reads_it(app, query):
    with app.test_request_context("/getBookInfo", environ_overrides={"QUERY_STRING": query.decode("latin-1")}):
        assert _url_parameters() == request.args.getlist("url")


def test_a_book_never_submitted_is_unknown(client):
    response = book_info(client)
    assert response.status_code == 404
    assert response.json == {
        "status": "unknown",
        "book_id": "42",
        "url": BOOK,
        "job_id": "book-42",
        "message": "this book was never submitted; POST its link to /parseGoodreadsLinks",
    }


def test_a_book_is_queued_then_answered_with_its_record(client, run_jobs):
    post_links(client, [BOOK])
    queued = book_info(client)
    assert queued.status_code == 202
    assert queued.json == {
        "status": "queued",
        "book_id": "42",
        "url": BOOK,
        "job_id": "book-42",
        "message": "the book is queued for parsing",
    }
    run_jobs()
    stored = book_info(client)
    assert stored.status_code == 200
    assert stored.mimetype == "application/json"
    record = stored.json
    assert list(record) == list(RECORD_FIELDS)
    assert {key: value for key, value in record.items() if key not in ("fetched_at", "source")} == parse_book_page(
        book_page("42"), "42"
    )
    assert record["source"] == "goodreads"
    assert record["title"] == "The Long Way Home"
    assert record["authors"] == ["Ann Writer", "Tom Translator", "Ida Illustrator"]
    assert recent(record["fetched_at"])


def test_any_accepted_link_form_finds_the_book(client, run_jobs):
    fetch_books(client, run_jobs, "42")
    for form in (
        "goodreads.com/book/show/42",
        "https://m.goodreads.com/fr/book/show/42-the-long-way-home?ref=x#reviews",
        " http://www.goodreads.com/book/show/0042.The_Long_Way_Home/ ",
    ):
        response = book_info(client, form)
        assert (response.status_code, response.json["book_id"]) == (200, "42"), form


def test_a_book_goodreads_does_not_have_is_not_found(client, origin, run_jobs):
    origin.behave("404", "404")
    fetch_books(client, run_jobs, "404")
    response = book_info(client, book_link("404"))
    assert response.status_code == 404
    body = response.json
    assert (body["status"], body["reason"], body["attempts"]) == ("not_found", "Goodreads answered HTTP 404", 1)
    assert body["message"] == "Goodreads has no book with this id"
    assert recent(body["last_attempt_at"])


@pytest.mark.parametrize(
    ("answer", "status", "reason", "free"),
    [
        ("503", "failed", "Goodreads failed to answer (HTTP 503)", 0),
        # A refusal may be about Goodreads itself: the book's first one is deferred, unspent.
        ("403", "blocked", "Goodreads refused the request (HTTP 403)", 1),
        ("signin", "blocked", "Goodreads answered with a sign-in page", 0),
    ],
)
def test_a_book_that_keeps_failing_ends_in_a_final_state_and_can_be_sent_again(
    client, origin, run_jobs, run_due_jobs, answer, status, reason, free
):
    origin.behave("42", answer)
    fetch_books(client, run_jobs, "42")  # RETRY_MAX=2 with no wait: three attempts in this call
    if free:
        deferred = book_info(client)
        assert deferred.status_code == 202
        assert (deferred.json["status"], deferred.json["reason"]) == ("retrying", reason)
        assert deferred.json["attempts"] == 0  # none spent: the refusal's attempt was given back
        assert recent(deferred.json["last_attempt_at"]) and future(deferred.json["next_attempt_at"])
        assert len(origin.fetches("42")) == 1
        run_due_jobs()  # the deferral's wait is over: the three attempts
    response = book_info(client)
    assert response.status_code == 502
    body = response.json
    assert (body["status"], body["reason"], body["attempts"]) == (status, reason, 3)
    assert recent(body["last_attempt_at"])
    assert len(origin.fetches("42")) == 3 + free
    assert outcome_of(client, BOOK) == "queued"


def test_a_book_waiting_for_its_retry_says_why(client_with, origin, run_jobs):
    client = client_with(RETRY_INTERVALS="600")
    origin.behave("42", "503")
    fetch_books(client, run_jobs, "42")
    response = book_info(client)
    assert response.status_code == 202
    body = response.json
    assert (body["status"], body["reason"], body["attempts"]) == (
        "retrying",
        "failed: Goodreads failed to answer (HTTP 503)",
        1,
    )
    assert recent(body["last_attempt_at"])
    next_attempt_in = datetime.fromisoformat(body["next_attempt_at"]).timestamp() - time.time()
    assert 595 < next_attempt_in <= 600  # when RQ's scheduler is to put it back (RETRY_INTERVALS)
    assert outcome_of(client, BOOK) == "already_queued"


def test_a_retry_that_is_due_but_not_yet_taken_is_due_now_not_in_the_past(client_with, origin, run_jobs, redis):
    """No worker (so no RQ scheduler) runs when the retry falls due: the answer says now, not a past time."""
    client = client_with(RETRY_INTERVALS="600")
    origin.behave("42", "503")
    fetch_books(client, run_jobs, "42")
    redis.hset("goodreads:status:42", "next_attempt_at", time.time() - 300)  # as if 600 s had passed
    body = book_info(client).json
    assert body["status"] == "retrying"
    assert abs(datetime.fromisoformat(body["next_attempt_at"]).timestamp() - time.time()) < 5


class RunsCode:
    """A pickle that, loaded by a plain unpickler, creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("compressed", [False, True])
def test_a_crafted_pickle_under_the_record_key_is_refused_and_runs_nothing(client, redis, tmp_path, compressed):
    marker = tmp_path / "pwned"
    crafted = pickle.dumps(RunsCode(marker))
    redis.set("goodreads:book:42", zlib.compress(crafted) if compressed else crafted)
    response = book_info(client)
    assert response.status_code == 502
    assert response.json["status"] == "failed"
    assert response.json["reason"] == (
        "the stored record is not plain data and was refused; send the link again with ?refresh=true"
    )
    assert not marker.exists()


def test_a_broken_compressed_record_answers_502_failed(client, redis, run_jobs):
    fetch_books(client, run_jobs, "42")
    redis.set("goodreads:book:42", redis.get("goodreads:book:42")[:-8])  # cut short
    response = book_info(client)
    assert (response.status_code, response.json["status"]) == (502, "failed")


# Batches and exports

COUNTS_NONE = {
    "queued": 0,
    "running": 0,
    "retrying": 0,
    "paused": 0,
    "stored": 0,
    "not_found": 0,
    "blocked": 0,
    "failed": 0,
    "unknown": 0,
    "rejected": 0,
}


@pytest.mark.parametrize(
    "batch_id", ["5738d3ead2604784bce82031c43e0dc8", "nope", "0123456789ABCDEF0123456789ABCDEF", "0" * 31]
)
@pytest.mark.parametrize("suffix", ["", "/books"])
def test_an_unknown_or_malformed_batch_is_a_404(client, batch_id, suffix):
    body = assert_error(client.get(f"/batches/{batch_id}{suffix}"), 404, "unknown_batch")
    assert body["message"] == "no such batch (batches expire after BATCH_TTL)"


def test_a_batch_reports_each_link_and_finishes(client, origin, run_jobs):
    origin.behave("702", "404")
    origin.behave("703", "signin")
    links = [
        "goodreads.com/book/show/701",
        "https://m.goodreads.com/book/show/701",
        "goodreads.com/book/show/702",
        "goodreads.com/book/show/703",
        "https://example.com/x",
    ]
    batch_id = post_links(client, links).json["batch_id"]
    before = client.get(f"/batches/{batch_id}").json
    assert before["finished"] is False
    assert before["counts"] == {**COUNTS_NONE, "queued": 3, "rejected": 1}
    run_jobs()
    response = client.get(f"/batches/{batch_id}")
    assert response.status_code == 200
    body = response.json
    assert (body["batch_id"], body["finished"]) == (batch_id, True)
    assert recent(body["created_at"])
    assert body["counts"] == {**COUNTS_NONE, "stored": 1, "not_found": 1, "blocked": 1, "rejected": 1}
    assert body["links"] == [
        {"link": links[0], "book_id": "701", "status": "stored"},
        {"link": links[1], "book_id": "701", "status": "stored"},
        {"link": links[2], "book_id": "702", "status": "not_found", "reason": "Goodreads answered HTTP 404"},
        {"link": links[3], "book_id": "703", "status": "blocked", "reason": "Goodreads answered with a sign-in page"},
        {"link": links[4], "status": "rejected", "reason": "'example.com' is not a Goodreads host"},
    ]


def test_a_book_shared_by_two_batches_is_fetched_once_and_counts_in_both(client, origin, run_jobs):
    first = post_links(client, [book_link("711"), book_link("712")]).json["batch_id"]
    second_post = post_links(client, [book_link("712")]).json
    assert second_post["results"][0]["outcome"] == "already_queued"
    second = second_post["batch_id"]
    assert client.get(f"/batches/{second}").json["counts"] == {**COUNTS_NONE, "queued": 1}
    run_jobs()
    for batch_id, stored in ((first, 2), (second, 1)):
        body = client.get(f"/batches/{batch_id}").json
        assert (body["finished"], body["counts"]) == (True, {**COUNTS_NONE, "stored": stored})
    assert len(origin.fetches("712")) == 1


def jsonl_records(response: TestResponse) -> list[dict[str, Any]]:
    assert (response.status_code, response.mimetype) == (200, "application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def csv_rows(response: TestResponse) -> list[list[str]]:
    assert (response.status_code, response.headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    return list(csv.reader(io.StringIO(response.text)))


def test_a_batch_exports_its_stored_books_once_each_in_the_order_sent(client, origin, run_jobs):
    origin.behave("722", "404")
    batch_id = fetch_books(client, run_jobs, "723", "722", "721", "723")
    fetch_books(client, run_jobs, "724")
    response = client.get(f"/batches/{batch_id}/books")
    assert response.headers["Content-Disposition"] == f'attachment; filename="batch-{batch_id}.jsonl"'
    records = jsonl_records(response)
    assert [record["book_id"] for record in records] == ["723", "721"]
    assert list(records[0]) == list(RECORD_FIELDS)
    csv_export = client.get(f"/batches/{batch_id}/books?format=csv")
    assert csv_export.headers["Content-Disposition"] == f'attachment; filename="batch-{batch_id}.csv"'
    assert [row[0] for row in csv_rows(csv_export)] == ["book_id", "723", "721"]


def test_all_books_export_as_jsonl_and_csv_with_lists_joined(client, redis, run_jobs):
    fetch_books(client, run_jobs, "731", "732", "734", "735")
    redis.set("goodreads:book:733", b"not a pickle")
    redis.set("goodreads:book:734", b"\x78\x9c" + b"\xff" * 40)  # a broken zlib stream
    stored = redis.get("goodreads:book:735")
    redis.set("goodreads:book:735", zlib.decompress(stored))  # as stored before records were compressed
    response = client.get("/books")
    assert response.headers["Content-Disposition"] == 'attachment; filename="books.jsonl"'
    records = sorted(jsonl_records(response), key=lambda record: record["book_id"])
    assert [record["book_id"] for record in records] == ["731", "732", "735"], "records not plain data are left out"
    assert records[0]["contributors"][1] == {"name": "Tom Translator", "role": "Translator"}

    header, *rows = csv_rows(client.get("/books?format=csv"))
    assert header == list(RECORD_FIELDS)
    row = dict(zip(header, sorted(rows)[0], strict=True))
    assert row["authors"] == "Ann Writer; Tom Translator; Ida Illustrator"
    assert row["contributors"] == "Ann Writer (Author); Tom Translator (Translator); Ida Illustrator (Illustrator)"
    assert row["genres"] == "Fantasy; Historical Fiction; Audiobook"
    assert (row["book_id"], row["rating"], row["pages"], row["published"]) == ("731", "4.12", "352", "")
    assert len(rows) == 3
    assert row["description"] == records[0]["description"], "newlines and quotes survive CSV quoting"


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_made_inert(client, redis):
    page_text = {
        "book_id": "751",
        "title": '=HYPERLINK("http://evil.example","Click")',
        "author": "@SUM(1+1)",
        "series": "+1 series",
        "description": "-2+3",
        "genres": ["=cmd", "Fantasy"],
        "publisher": "\tTabbed",
        "language": "English - abridged",
        "rating": -1,
    }
    BookStore(redis).save_record("751", page_text)
    header, row = csv_rows(client.get("/books?format=csv"))
    cells = dict(zip(header, row, strict=True))
    assert (cells["title"], cells["author"], cells["series"]) == (f"'{page_text['title']}", "'@SUM(1+1)", "'+1 series")
    assert (cells["description"], cells["genres"], cells["publisher"]) == ("'-2+3", "'=cmd; Fantasy", "'\tTabbed")
    assert (cells["language"], cells["book_id"], cells["rating"]) == ("English - abridged", "751", "'-1")
    assert jsonl_records(client.get("/books")) == [{**MISSING_VALUES, **page_text}]  # values as stored


def test_export_lines_go_out_in_pieces_of_whole_lines():
    lines = [f"{n:05}\n" for n in range(1000)]
    pieces = list(in_pieces(lines, size=100))
    assert "".join(pieces) == "".join(lines)
    assert all(piece.endswith("\n") and len(piece) < 106 for piece in pieces)
    assert all(len(piece) >= 100 for piece in pieces[:-1])
    assert list(in_pieces([], size=100)) == []


def test_an_export_of_nothing_is_empty_or_just_the_header(client, redis):
    assert client.get("/books").data == b""
    assert csv_rows(client.get("/books?format=csv")) == [list(RECORD_FIELDS)]


@pytest.mark.parametrize("export_format", ["xml", "JSONL", ""])
def test_an_unknown_export_format_is_refused(client, run_jobs, export_format):
    batch_id = fetch_books(client, run_jobs, "741")
    for path in ("/books", f"/batches/{batch_id}/books"):
        body = assert_error(client.get(path, query_string={"format": export_format}), 400, "invalid_format")
        assert body["message"] == "?format= takes jsonl or csv"


# The service's own endpoints and its errors


def test_metrics_count_the_attempts_and_the_queue(client, origin, run_jobs):
    origin.behave("404", "404")
    fetch_books(client, run_jobs, "42", "404")
    post_links(client, [book_link("43")])
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    lines = set(response.text.splitlines())
    assert {
        "goodreads_queue_depth 1.0",
        'goodreads_jobs{state="queued"} 1.0',
        'goodreads_jobs{state="finished"} 0.0',  # RESULT_TTL=0: RQ deletes a finished job at once
        'goodreads_jobs{state="failed"} 0.0',
        'goodreads_attempts_total{outcome="stored"} 1.0',
        'goodreads_attempts_total{outcome="not_found"} 1.0',
        "goodreads_records_stored_total 1.0",
        'goodreads_origin_responses_total{status="200"} 1.0',
        'goodreads_origin_responses_total{status="404"} 1.0',
        'goodreads_fetch_seconds_bucket{le="+Inf"} 2.0',
        "goodreads_fetch_seconds_count 2.0",
    } <= lines


def test_healthz_answers_without_asking_anything(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_the_bare_address_points_to_the_description_the_dashboard_and_the_health_checks(client):
    response = client.get("/")
    assert (response.status_code, response.mimetype) == (200, "application/json")
    assert response.json["links"] == {
        "openapi": "/openapi.json",
        "dashboard": "/rqstatus",
        "health": "/healthz",
        "ready": "/readyz",
    }
    for path in response.json["links"].values():  # each one answers (the dashboard with its redirect)
        assert client.get(path).status_code in (200, 308), path


def test_readyz_reports_workers_and_queue_depth(client):
    post_links(client, [BOOK, book_link("43")])
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ready",
        "redis": "ok",
        "workers": 0,
        "queue": "bookInfoParser",
        "queue_depth": 2,
        "origin": {"state": "ok", "reason": None, "since": None},
    }


def test_the_openapi_document_describes_every_json_route(client):
    response = client.get("/openapi.json")
    assert (response.status_code, response.mimetype) == (200, "application/json")
    assert response.json["openapi"] == "3.1.0"
    assert set(response.json["paths"]) == {
        "/",
        "/parseGoodreadsLinks",
        "/getBookInfo",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/batches/{batch_id}",
        "/batches/{batch_id}/books",
        "/books",
    }


@pytest.mark.parametrize("path", ["/nope", "/getBookInfo/extra", "/batches/"])
def test_an_unknown_path_is_a_json_404(client, path):
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/parseGoodreadsLinks", {"POST", "OPTIONS"}),
        ("POST", "/getBookInfo", {"GET", "HEAD", "OPTIONS"}),
        ("DELETE", "/books", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_a_wrong_method_is_a_json_405_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) == allowed


def test_an_unexpected_error_is_a_json_500_without_details(client, app, monkeypatch):
    def broken() -> int:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["book_queue"], "live_worker_count", broken)
    body = assert_error(client.get("/readyz"), 500, "internal_error")
    assert body == {"error": "internal_error", "message": "the service failed to answer this request"}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("POST", "/parseGoodreadsLinks", [BOOK]),
        ("GET", f"/getBookInfo?url={BOOK}", None),
        ("GET", "/batches/0123456789abcdef0123456789abcdef", None),
        ("GET", "/books", None),
        ("GET", "/metrics", None),
        ("GET", "/readyz", None),
        ("GET", "/rqstatus/", None),
    ],
)
def test_an_unreachable_redis_is_a_json_503_with_retry_after(client_with, method, path, json):
    client = client_with(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_SOCKET_TIMEOUT="0.5")
    response = client.open(path, method=method, json=json)
    assert_error(response, 503, "redis_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert client.get("/healthz").status_code == 200


def test_a_redis_that_does_not_answer_is_a_json_503(client_with, silent_port):
    client = client_with(REDIS_URL=f"redis://127.0.0.1:{silent_port}/0", REDIS_SOCKET_TIMEOUT="0.1")
    response = client.get("/readyz")
    assert_error(response, 503, "redis_unavailable")
    assert response.headers["Retry-After"] == "5"


# The dashboard's guard

USER, PASSWORD = "operator", "s3cret-for-tests"


@pytest.mark.parametrize(
    "authorization",
    [None, (USER, "wrong"), ("someone", PASSWORD), ("", "")],
    ids=["anonymous", "wrong password", "wrong user", "empty"],
)
def test_the_dashboard_asks_for_its_credentials(client_with, authorization):
    client = client_with(RQ_DASHBOARD_USERNAME=USER, RQ_DASHBOARD_PASSWORD=PASSWORD)
    response = client.get("/rqstatus/", auth=authorization)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="rq-dashboard", charset="UTF-8"'


def test_the_dashboard_refuses_a_bearer_token(client_with):
    client = client_with(RQ_DASHBOARD_USERNAME=USER, RQ_DASHBOARD_PASSWORD=PASSWORD)
    assert_error(client.get("/rqstatus/", headers={"Authorization": f"Bearer {PASSWORD}"}), 401, "unauthorized")


def test_the_dashboard_opens_with_the_right_credentials(client_with):
    client = client_with(RQ_DASHBOARD_USERNAME=USER, RQ_DASHBOARD_PASSWORD=PASSWORD)
    page = client.get("/rqstatus/", auth=(USER, PASSWORD))
    assert (page.status_code, page.mimetype) == (200, "text/html")
    queues = client.get("/rqstatus/0/data/queues.json", auth=(USER, PASSWORD))
    assert queues.status_code == 200
    assert "queues" in queues.json


def test_the_dashboard_is_open_when_no_credentials_are_configured(client):
    assert client.get("/rqstatus/").status_code == 200


def test_a_book_stored_while_it_is_looked_up_is_answered_with_its_record(client, app, redis, monkeypatch):
    """The record is read first, then the book's state: a record written between the two reads
    (its job already gone, as RQ deletes a finished one) is answered, not "unknown"."""
    app.extensions["book_queue"].store.save_record("42", {"book_id": "42", "title": "Written just now"})
    monkeypatch.setattr(app.extensions["record_cache"], "fetch", lambda book_id, load: None)  # read before the write
    response = book_info(client)
    assert response.status_code == 200
    assert response.json == {**MISSING_VALUES, "book_id": "42", "title": "Written just now"}
