"""The command-line client in process, against the app served over real HTTP on a free port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from client.cli import GAVE_UP, main, retry_reason

BOOK = "https://www.goodreads.com/book/show/{}"


@pytest.fixture
def server(app) -> Iterator[str]:
    """The app behind werkzeug's HTTP server in a thread; no worker runs the jobs unless a test does."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(5)


def submit(server: str, links_file, *options: str) -> int:
    return main(["submit", str(links_file), "--server", server, "--interval", "0.05", *options])


def test_help_shows_the_defaults_and_the_exit_statuses(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["submit", "--help"])
    assert exit.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert "the service's base URL (default: http://localhost:5000)" in help_text
    assert "links per request (default: 1000)" in help_text
    assert "seconds between progress polls (default: 2.0)" in help_text
    assert "(default: wait until every book has settled)" in help_text
    assert f"{GAVE_UP} gave up waiting (--timeout)" in help_text
    assert "2 a usage error" in help_text


def test_giving_up_writes_the_records_stored_so_far_and_exits_3(server, client, run_jobs, tmp_path, capsys):
    client.post("/parseGoodreadsLinks", json=[BOOK.format(901)])
    run_jobs()  # 901 is stored; 902, sent by the client below, stays queued: no worker runs
    links = tmp_path / "links.txt"
    links.write_text(f"{BOOK.format(901)}\n{BOOK.format(902)}\n")
    out = tmp_path / "books.jsonl"

    assert submit(server, links, "--wait", "--out", str(out), "--timeout", "0.2") == GAVE_UP
    printed = capsys.readouterr()
    assert [json.loads(line)["book_id"] for line in out.read_text().splitlines()] == ["901"]
    assert printed.out.splitlines() == ["Gave up waiting (--timeout): 1 queued, 1 stored"]
    assert "Sent 2 links in 1 batch: " in printed.err
    assert "Wrote 1 record to" in printed.err
    assert "send the same links again later" in printed.err


def test_the_progress_bar_starts_with_its_total(server, tmp_path, capsys):
    links = tmp_path / "links.txt"
    links.write_text(BOOK.format(903) + "\n")
    assert submit(server, links, "--wait", "--timeout", "0") == GAVE_UP
    err = capsys.readouterr().err
    assert "Sent 1 link in 1 batch: " in err
    first_bar = err.split("\r")[1]
    assert "0/1 [" in first_bar, err  # not "0book [00:00, ?book/s]", a bar without its total
    assert "queued=1" in err


def test_the_progress_bar_says_why_books_are_retrying():
    def link(status: str, reason: str | None = None) -> dict:
        return {"status": status, **({"reason": reason} if reason else {})}

    slow = "failed: Goodreads stopped sending the page (read timeout)"
    batches = [
        {"links": [link("retrying", "failed: Goodreads failed to answer (HTTP 503)"), link("stored")]},
        {"links": [link("retrying", slow), link("retrying", slow), link("failed", "gone"), link("queued")]},
    ]
    assert retry_reason(batches) == "failed: Goodreads stopped sending the page (read …"
    assert len(retry_reason(batches)) == 50
    assert retry_reason(batches[:1]) == "failed: Goodreads failed to answer (HTTP 503)"
    assert retry_reason([{"links": [link("queued"), link("failed", "gone")]}]) is None
