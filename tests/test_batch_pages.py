"""Batches in pages, in process: cursors and limits, bad values, counts of finished and
unfinished batches, batches kept by an earlier version, and the command-line client asking
for counts only while it waits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from app import create_app
from books.store import BookStore
from client.cli import GAVE_UP, main

BOOK = "https://www.goodreads.com/book/show/{}"
# Five links: four books (one sent twice) and one refused.
LINKS = [BOOK.format(951), BOOK.format(952), "https://example.com/x", BOOK.format(951), BOOK.format(953)]


@pytest.fixture
def paged_app(configure) -> Iterator[Flask]:
    app = create_app(configure(BATCH_PAGE_SIZE="2"))
    yield app
    app.extensions["record_cache"].close()


@pytest.fixture
def paged(paged_app) -> FlaskClient:
    return paged_app.test_client()


def post(client: FlaskClient, links: list[str], query: str = "") -> str:
    response = client.post(f"/parseGoodreadsLinks{query}", json=links)
    assert response.status_code == 202, response.json
    return response.json["batch_id"]


def test_pages_follow_next_cursor_to_the_end_with_every_link_once(paged, run_jobs):
    batch_id = post(paged, LINKS)
    run_jobs()
    pages, cursor = [], "0"
    while cursor is not None:
        body = paged.get(f"/batches/{batch_id}?cursor={cursor}").json
        pages.append(body["links"])
        cursor = body["next_cursor"]
    assert [len(links) for links in pages] == [2, 2, 1]  # BATCH_PAGE_SIZE=2: the default page
    assert [link["link"] for links in pages for link in links] == LINKS
    assert [link["status"] for links in pages for link in links] == ["stored"] * 2 + ["rejected"] + ["stored"] * 2
    assert body["counts"]["stored"] == 3 and body["counts"]["rejected"] == 1 and body["finished"]


def test_a_limit_and_a_cursor_choose_the_page_and_limit_0_answers_the_counts_only(paged):
    batch_id = post(paged, LINKS)
    body = paged.get(f"/batches/{batch_id}?cursor=3&limit=1").json
    assert ([link["link"] for link in body["links"]], body["next_cursor"]) == ([LINKS[3]], "4")
    body = paged.get(f"/batches/{batch_id}?limit=0").json
    # The counts alone: no page follows (a cursor here would send a pager round the same page forever).
    assert (body["links"], body["next_cursor"], body["finished"]) == ([], None, False)
    assert paged.get(f"/batches/{batch_id}?cursor=2&limit=0").json["next_cursor"] is None
    assert body["counts"]["queued"] == 3 and body["counts"]["rejected"] == 1
    assert paged.get(f"/batches/{batch_id}?cursor=5").json["links"] == []
    assert paged.get(f"/batches/{batch_id}?cursor=5").json["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("cursor=-1", "invalid_cursor", "?cursor= takes a next_cursor of this batch (0 to 5)"),
        ("cursor=6", "invalid_cursor", "?cursor= takes a next_cursor of this batch (0 to 5)"),
        ("cursor=x", "invalid_cursor", "?cursor= takes a next_cursor of this batch (0 to 5)"),
        ("cursor=%EF%BC%91", "invalid_cursor", "?cursor= takes a next_cursor of this batch (0 to 5)"),
        ("cursor=" + "9" * 5000, "invalid_cursor", "?cursor= takes a next_cursor of this batch (0 to 5)"),
        ("cursor=", "invalid_cursor", "?cursor= takes a next_cursor of this batch (0 to 5)"),
        ("limit=3", "invalid_limit", "?limit= takes a whole number from 0 to 2"),
        ("limit=1.5", "invalid_limit", "?limit= takes a whole number from 0 to 2"),
        ("limit=", "invalid_limit", "?limit= takes a whole number from 0 to 2"),
    ],
)
def test_a_bad_cursor_or_limit_is_a_400_with_the_reason(paged, query, code, message):
    response = paged.get(f"/batches/{post(paged, LINKS)}?{query}")
    assert (response.status_code, response.json) == (400, {"error": code, "message": message})


def test_a_finished_batch_keeps_its_counts_and_a_book_sent_again_belongs_to_the_new_batch(paged, redis, run_jobs):
    first = post(paged, LINKS)
    run_jobs()
    finished = paged.get(f"/batches/{first}?limit=0").json
    assert finished["finished"] and finished["counts"]["stored"] == 3
    kept = json.loads(redis.hget(f"goodreads:batch:{first}", "counts"))
    assert kept == {**finished["counts"], "sources": finished["sources"]}

    second = post(paged, [BOOK.format(952)], "?refresh=true")  # sent again: queued anew
    again = paged.get(f"/batches/{first}").json
    assert (again["finished"], again["counts"]) == (True, finished["counts"])  # how the first batch ended
    assert [link["status"] for link in again["links"]] == ["stored", "queued"]  # each link as it is now
    assert paged.get(f"/batches/{second}").json["counts"]["queued"] == 1


def test_a_batch_kept_by_an_earlier_version_is_read_and_kept_with_its_time_left(paged, redis):
    batch_id = "ab" * 16
    links = [[LINKS[0], "951", None], [LINKS[2], None, "'example.com' is not a Goodreads host"]]
    document = {"created_at": "2026-01-02T03:04:05+00:00", "links": links}
    redis.set(f"goodreads:batch:{batch_id}", json.dumps(document), ex=500)
    body = paged.get(f"/batches/{batch_id}").json
    assert body["created_at"] == "2026-01-02T03:04:05+00:00"
    assert [(link["link"], link["status"]) for link in body["links"]] == [(LINKS[0], "unknown"), (LINKS[2], "rejected")]
    assert body["counts"]["unknown"] == 1 and body["counts"]["rejected"] == 1
    for part in ("", ":links", ":books"):
        assert 490 < redis.ttl(f"goodreads:batch:{batch_id}{part}") <= 500


def test_the_index_is_read_by_score_so_that_ties_and_rewrites_lose_no_record_and_repeat_none(redis):
    store = BookStore(redis)
    redis.zadd(store.stored_at_key, {str(n): 100.0 for n in range(7)} | {"7": 50.0, "8": 200.0, "9": 150.0})
    ids = store.stored_book_ids(chunk=3)
    read = [next(ids) for _ in range(4)]
    # Written now: a record read already (read by rank, one would be lost; read again, it
    # would repeat), one not read yet (it must still come), and a new one.
    now = time.time()
    redis.zadd(store.stored_at_key, {"7": now, "8": now + 0.001, "10": now + 0.002})
    assert read + list(ids) == ["7", "0", "1", "2", "3", "4", "5", "6", "9", "8", "10"]


def test_all_books_lists_records_written_before_the_index_once_indexed(client, redis):
    store = BookStore(redis)
    store.save_record("961", {"book_id": "961"})
    redis.set(store.record_key("962"), redis.get(store.record_key("961")))  # no index entry
    assert sorted(json.loads(line)["book_id"] for line in client.get("/books").text.splitlines()) == ["961", "961"]
    assert redis.zscore(store.stored_at_key, "962") is not None


def test_the_client_asks_for_counts_only_while_it_waits_and_for_the_links_at_the_end(configure, tmp_path, capsys):
    app = create_app(configure(BATCH_PAGE_SIZE="2"))
    asked: list[str] = []
    app.before_request(lambda: asked.append(request.full_path) if request.path.startswith("/batches/") else None)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        links = tmp_path / "links.txt"
        links.write_text("\n".join(LINKS) + "\n")
        server = f"http://127.0.0.1:{http.server_port}"
        assert main(["submit", str(links), "--server", server, "--interval", "0.05", "--wait", "--timeout", "0.3"]) == (
            GAVE_UP
        )
    finally:
        http.shutdown()
        thread.join(5)
        app.extensions["record_cache"].close()
    waiting, end = asked[:-3], asked[-3:]
    assert len(waiting) >= 2 and all(path.endswith("?limit=0") for path in waiting), asked
    assert [path.partition("?")[2] for path in end] == ["", "cursor=2", "cursor=4"]  # every link, a page at a time
    assert "Gave up waiting (--timeout): 3 queued, 1 rejected" in capsys.readouterr().out
