"""POST /parseGoodreadsLinks with a Goodreads library export (text/csv) or a link per line
(text/plain), in process: Flask's test client, the tests' own Redis, jobs run in process."""

from __future__ import annotations

import pytest

from books.hints import BookHints, Hints
from books.links import BookId
from books.settings import Settings
from tests.test_api import assert_error, leftover_keys
from tests.test_imports import EXPORT, HEADER

# Low limits for this module's app, so that a file past them is small.
MAX_ROWS = 8
MAX_BYTES = 4096
EXPORT_BOOKS = ["44767458", "5907", "18144590", "13079982", "2767052"]


@pytest.fixture
def settings(configure) -> Settings:
    return configure(MAX_LINKS_PER_REQUEST=str(MAX_ROWS), MAX_REQUEST_BYTES=str(MAX_BYTES))


def post(client, body: bytes, content_type: str | None, query: str = ""):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(f"/parseGoodreadsLinks{query}", data=body, headers=headers)


def export_of(*rows: str) -> bytes:
    return "\r\n".join([HEADER, *rows, ""]).encode()


def test_an_export_queues_its_books_keeps_their_hints_and_lists_bad_rows_with_their_lines(client, redis, run_jobs):
    response = post(client, EXPORT.read_bytes(), "text/csv")
    assert response.status_code == 202, response.json
    body = response.json
    assert body["counts"] == {
        "links": 7,
        "books": 5,
        "queued": 5,
        "already_queued": 0,
        "stored": 0,
        "not_found": 0,
        "rejected": 2,
    }
    assert body["message"] == "5 books are scheduled for info parsing."
    assert body["results"][0] == {
        "line": 2,
        "link": "44767458",
        "book_id": "44767458",
        "url": "https://www.goodreads.com/book/show/44767458",
        "job_id": "book-44767458",
        "outcome": "queued",
    }
    assert [result["line"] for result in body["results"]] == [2, 4, 5, 6, 7, 10, 12]
    assert [result for result in body["results"] if result["outcome"] == "rejected"] == [
        {"line": 6, "link": "", "outcome": "rejected", "reason": "line 6: the row has no Book Id"},
        {
            "line": 10,
            "link": "n/a",
            "outcome": "rejected",
            "reason": "line 10: the book id 'n/a' is not a positive number of at most 12 digits",
        },
    ]
    hints = Hints(redis, "goodreads", 100)
    assert hints.load(BookId("44767458")) == BookHints("Dune (Dune, #1)", "Frank Herbert", "9780441172719")
    assert hints.load(BookId("18144590")) == BookHints("The Alchemist", "Paulo Coelho", "")
    assert 0 < redis.ttl("goodreads:hints:5907") <= 7 * 24 * 3600  # BATCH_TTL, as the batch's

    run_jobs()
    for book_id in EXPORT_BOOKS:
        record = client.get(f"/getBookInfo?url=goodreads.com/book/show/{book_id}")
        assert (record.status_code, record.json["book_id"]) == (200, book_id)
    batch = client.get(f"/batches/{body['batch_id']}").json
    assert batch["finished"] and batch["counts"]["stored"] == 5 and batch["counts"]["rejected"] == 2
    assert batch["links"][3] == {"link": "", "status": "rejected", "reason": "line 6: the row has no Book Id"}


def test_a_link_per_line_is_taken_as_text_blank_lines_skipped(client):
    body = b"https://www.goodreads.com/book/show/5907.The_Hobbit\r\n\r\n  goodreads.com/book/show/1  \nexample.com/x\n"
    response = post(client, body, "text/plain; charset=utf-8", "?refresh=true")
    assert response.status_code == 202, response.json
    assert [(result["line"], result["outcome"], result.get("book_id")) for result in response.json["results"]] == [
        (1, "queued", "5907"),
        (3, "queued", "1"),
        (4, "rejected", None),
    ]
    assert response.json["results"][1]["link"] == "  goodreads.com/book/show/1  "
    assert response.json["results"][2]["reason"] == "'example.com' is not a Goodreads host"


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "application/x-www-form-urlencoded", "application/vnd.api+json"]
)
def test_json_is_read_as_before_whatever_json_type_or_none(client, content_type):
    response = post(client, b'["goodreads.com/book/show/7"]', content_type)
    assert response.status_code == 202, response.json
    assert response.json["results"] == [
        {
            "link": "goodreads.com/book/show/7",
            "book_id": "7",
            "url": "https://www.goodreads.com/book/show/7",
            "job_id": "book-7",
            "outcome": "queued",
        }
    ]  # no line: a JSON array's links have none


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=x", "application/xml", "text/html", "application/octet-stream"]
)
def test_any_other_content_type_is_a_415_naming_the_ones_taken(client, redis, content_type):
    body = assert_error(post(client, EXPORT.read_bytes(), content_type), 415, "unsupported_media_type")
    assert "application/json" in body["message"] and "text/plain" in body["message"]
    assert "text/csv" in body["message"]
    assert leftover_keys(redis) == []


@pytest.mark.parametrize(
    ("content_type", "data", "status", "code"),
    [
        ("text/csv", b"Title,Author\r\nDune,Frank Herbert\r\n", 400, "no_book_id_column"),
        ("text/csv", b"", 400, "no_links"),
        ("text/csv", HEADER.encode() + b"\r\n\r\n", 400, "no_links"),
        ("text/csv", b"Book Id,Title\r\n1,\xe9t\xe9\r\n", 400, "invalid_text"),
        ("text/csv", b'Book Id,Title\r\n1,"not closed\r\n', 400, "invalid_csv"),
        ("text/csv", export_of(*(f"{n},Title {n}" for n in range(1, MAX_ROWS + 2))), 413, "too_many_links"),
        ("text/csv", export_of("1,Title", "2," + "x" * MAX_BYTES), 413, "request_entity_too_large"),
        ("text/plain", b"\n  \r\n", 400, "no_links"),
        ("text/plain", b"goodreads.com/book/show/1\n\xff\n", 400, "invalid_text"),
        ("text/plain", "".join(f"goodreads.com/book/show/{n}\n" for n in range(1, MAX_ROWS + 2)).encode(), 413, None),
    ],
    ids=[
        "no Book Id column",
        "empty",
        "header alone",
        "latin-1",
        "unterminated quote",
        "a row too many",
        "too many bytes",
        "blank lines",
        "text not utf-8",
        "a line too many",
    ],
)
def test_a_file_that_cannot_be_taken_is_a_4xx_with_its_reason_and_leaves_nothing(
    client, redis, content_type, data, status, code
):
    body = assert_error(post(client, data, content_type), status, code or "too_many_links")
    if status == 413 and code != "request_entity_too_large":
        assert (
            body["message"] == f"at most {MAX_ROWS} links or rows per request (MAX_LINKS_PER_REQUEST); split the file"
        )
    assert leftover_keys(redis) == []


def test_an_export_of_rows_at_the_limit_is_taken(client):
    response = post(client, export_of(*(f"{n},Title {n}" for n in range(1, MAX_ROWS + 1))), "text/csv")
    assert (response.status_code, response.json["counts"]["queued"]) == (202, MAX_ROWS)


def test_an_export_without_a_usable_book_id_is_a_400_with_each_row_and_keeps_no_hints(client, redis):
    body = assert_error(post(client, export_of(",Dune,Frank Herbert", "x1,Emma"), "text/csv"), 400, "no_valid_links")
    assert [(result["line"], result["reason"]) for result in body["results"]] == [
        (2, "line 2: the row has no Book Id"),
        (3, "line 3: the book id 'x1' is not a positive number of at most 12 digits"),
    ]
    assert leftover_keys(redis) == []
