"""The command-line client in process, against the app served over real HTTP on a free port."""

from __future__ import annotations

import csv
import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import requests
from flask import Flask, Response, request
from urllib3 import HTTPConnectionPool
from urllib3.connection import HTTPConnection
from urllib3.exceptions import MaxRetryError, NameResolutionError
from werkzeug.serving import make_server

from app import create_app
from app.api import OPENAPI_DOCUMENT
from books.status import FINAL_FAILURES, IN_PROGRESS, BookStatus, Outcome
from client import cli, statuses
from client.cli import GAVE_UP, TOKEN_VARIABLE, UNAUTHORIZED, Api, main, retry_after, retry_reason, submit
from tests.test_imports import EXPORT

BOOK = "https://www.goodreads.com/book/show/{}"
TOKEN = "t0ken-of-the-tests"


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app behind werkzeug's HTTP server in a thread; no worker runs the jobs unless a test does."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(5)


@pytest.fixture
def server(app) -> Iterator[str]:
    with served(app) as url:
        yield url


Answered = tuple[str, int, str | None, list[str]]


def answered(app: Flask) -> list[Answered]:
    """Every request the app answers from now on: method, status, Authorization header, and the
    links a POST had accepted."""
    seen: list[Answered] = []

    @app.after_request
    def note(response: Response) -> Response:
        accepted = []
        if request.method == "POST" and response.status_code == 202:
            accepted = [result["link"] for result in response.get_json()["results"]]
        seen.append((request.method, response.status_code, request.headers.get("Authorization"), accepted))
        return response

    return seen


def posts(seen: list[Answered]) -> list[tuple[int, list[str]]]:
    """Each POST's status and the links it had accepted."""
    return [(status, accepted) for method, status, _, accepted in seen if method == "POST"]


def run_client(server: str, links_file, *options: str) -> int:
    return main(["submit", str(links_file), "--server", server, "--interval", "0.05", *options])


def test_the_clients_status_names_are_the_apis():
    schemas = json.loads(OPENAPI_DOCUMENT)["components"]["schemas"]
    assert tuple(schemas["BookState"]["properties"]["status"]["enum"]) == statuses.BOOK_STATUSES
    link_statuses = schemas["BatchProgress"]["properties"]["links"]["items"]["properties"]["status"]["enum"]
    assert (*statuses.BOOK_STATUSES, statuses.REJECTED) == tuple(link_statuses)
    assert statuses.REJECTED in schemas["LinkResult"]["properties"]["outcome"]["enum"]
    assert tuple(BookStatus) == statuses.BOOK_STATUSES
    assert (statuses.IN_PROGRESS, statuses.FINAL_FAILURES) == (IN_PROGRESS, FINAL_FAILURES)
    assert statuses.REJECTED == Outcome.REJECTED


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
    assert f"(default: ${TOKEN_VARIABLE};" in help_text
    assert f"{UNAUTHORIZED} the server wants an API token (--token or {TOKEN_VARIABLE})" in help_text
    assert "429 (past this client's POST budget) or 503" in help_text


def test_giving_up_writes_the_records_stored_so_far_and_exits_3(server, client, run_jobs, tmp_path, capsys):
    client.post("/parseGoodreadsLinks", json=[BOOK.format(901)])
    run_jobs()  # 901 is stored; 902, sent by the client below, stays queued: no worker runs
    links = tmp_path / "links.txt"
    links.write_text(f"{BOOK.format(901)}\n{BOOK.format(902)}\n")
    out = tmp_path / "books.jsonl"

    assert run_client(server, links, "--wait", "--out", str(out), "--timeout", "0.2") == GAVE_UP
    printed = capsys.readouterr()
    assert [json.loads(line)["book_id"] for line in out.read_text().splitlines()] == ["901"]
    assert printed.out.splitlines() == ["Gave up waiting (--timeout): 1 queued, 1 stored"]
    assert "Sent 2 links in 1 batch: " in printed.err
    assert "Wrote 1 record to" in printed.err
    assert "send the same links again later" in printed.err


def test_the_progress_bar_starts_with_its_total(server, tmp_path, capsys):
    links = tmp_path / "links.txt"
    links.write_text(BOOK.format(903) + "\n")
    assert run_client(server, links, "--wait", "--timeout", "0") == GAVE_UP
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


def test_the_token_goes_with_every_request_and_a_spent_budget_is_waited_out(configure, run_jobs, tmp_path, capsys):
    app = create_app(configure(POST_BUDGET="1", POST_BUDGET_WINDOW="1", API_TOKENS=f"another,{TOKEN}"))
    seen = answered(app)
    # Two books stored beforehand, from another address (its own budget), so that the client's
    # batches finish at once and the run is short.
    setup = app.test_client().post(
        "/parseGoodreadsLinks",
        json=[BOOK.format(911), BOOK.format(912)],
        headers={"Authorization": f"Bearer {TOKEN}"},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert setup.status_code == 202
    run_jobs()
    seen.clear()
    links = tmp_path / "links.txt"
    links.write_text(f"{BOOK.format(911)}\n{BOOK.format(912)}\n")
    out = tmp_path / "books.jsonl"

    with served(app) as server:
        assert run_client(server, links, "--batch-size", "1", "--token", TOKEN, "--wait", "--out", str(out)) == 0
    printed = capsys.readouterr()
    # The refused batch is sent again, the accepted one never.
    assert posts(seen) == [(202, [BOOK.format(911)]), (429, []), (202, [BOOK.format(912)])]
    assert {authorization for _, _, authorization, _ in seen} == {f"Bearer {TOKEN}"}  # every GET too
    assert len([method for method, *_ in seen if method == "GET"]) >= 3  # the batches' counts and records
    assert (
        "Waiting 1 s, then sending links 2-2 again: the server answered 429 "
        "(at most 1 POSTs per 1 s from one client (POST_BUDGET); try again in 1 s)"
    ) in printed.err
    assert printed.out.splitlines()[0] == "Done: 2 stored"
    assert sorted(json.loads(line)["book_id"] for line in out.read_text().splitlines()) == ["911", "912"]
    assert TOKEN not in printed.out + printed.err


def test_a_full_queue_is_waited_out_and_only_the_refused_links_sent_again(configure, run_jobs, capsys):
    app = create_app(configure(MAX_QUEUED_BOOKS="1"))
    seen = answered(app)
    waits: list[float] = []

    def drain(seconds: float) -> None:
        """Instead of the minute the server asks for, the queue is emptied as workers would."""
        waits.append(seconds)
        run_jobs()

    links = [BOOK.format(921), BOOK.format(922)]
    with served(app) as server, requests.Session() as session:
        sent = submit(Api(session, server, sleep=drain), links, 1, False)
    assert posts(seen) == [(202, links[:1]), (503, []), (202, links[1:])]
    assert waits == [60]
    assert len(sent.batch_ids) == 2 and sent.unsent == 0
    assert "Waiting 60 s, then sending links 2-2 again: the server answered 503 (1 books are waiting" in (
        capsys.readouterr().err
    )


def test_a_wait_past_the_timeout_stops_the_sending(configure, tmp_path, capsys):
    app = create_app(configure(MAX_QUEUED_BOOKS="1"))
    seen = answered(app)
    links = tmp_path / "links.txt"
    links.write_text("".join(f"{BOOK.format(book)}\n" for book in (931, 932, 933)))
    with served(app) as server:
        assert run_client(server, links, "--batch-size", "1", "--wait", "--timeout", "0.5") == GAVE_UP
    printed = capsys.readouterr()
    assert posts(seen) == [(202, [BOOK.format(931)]), (503, [])]  # nothing sent after
    assert "Sent 1 of 3 links in 1 batch: " in printed.err
    assert (
        "Stopped sending: the server answered 503 (1 books are waiting, and at most 1 may (MAX_QUEUED_BOOKS): "
        "the 1 books of this request were not queued; send them again later) and asked to wait 60 s, past --timeout"
    ) in printed.err
    assert "Waiting" not in printed.err
    assert printed.out.splitlines() == [
        "Gave up waiting (--timeout): 1 queued, 2 not_sent",
        "      2 not_sent: the server asked to wait past --timeout",
    ]


def test_a_missing_or_refused_token_stops_the_client_with_its_own_exit_status(configure, tmp_path, capsys, monkeypatch):
    app = create_app(configure(API_TOKENS=TOKEN))
    links = tmp_path / "links.txt"
    links.write_text(BOOK.format(941) + "\n")
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    with served(app) as server:
        assert run_client(server, links) == UNAUTHORIZED
        without = capsys.readouterr().err
        monkeypatch.setenv(TOKEN_VARIABLE, "not-the-token")
        assert run_client(server, links) == UNAUTHORIZED
        refused = capsys.readouterr().err
        assert run_client(server, links, "--token", TOKEN) == 0  # --token before the variable
        with pytest.raises(SystemExit) as exit:
            run_client(server, links, "--token", "two words")
    assert exit.value.code == 2
    assert f"error: the server takes links only with an API token: set {TOKEN_VARIABLE} or pass --token" in without
    assert f"error: the server refused the API token given in {TOKEN_VARIABLE}" in refused
    assert "not-the-token" not in refused
    assert "the API token in --token must be printable ASCII without spaces" in capsys.readouterr().err


def test_a_503_that_says_not_when_to_come_back_stops_the_client(tmp_path, capsys):
    proxy = Flask("proxy")  # e.g. a proxy in front of the service, answering in its stead
    proxy.post("/parseGoodreadsLinks")(lambda: ({"message": "down for maintenance"}, 503))
    links = tmp_path / "links.txt"
    links.write_text(BOOK.format(951) + "\n")
    with served(proxy) as server:
        assert run_client(server, links) == 2
    assert (
        "error: the server answered 503 (down for maintenance) without saying when to come back (Retry-After)"
        in capsys.readouterr().err
    )


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7),
        (" 7 ", 7),
        ("0", 1),  # never asked again at once
        ("Fri, 02 Jan 2026 03:04:35 GMT", 30),
        ("Fri, 02 Jan 2026 03:04:35 -0000", 30),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 1),  # a date gone by
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("1.5", None),
        ("²", None),
    ],
)
def test_retry_after_reads_seconds_and_dates(header, seconds):
    assert retry_after(header, NOW) == seconds


def test_a_wait_past_the_timeout_while_following_is_giving_up_not_an_error(tmp_path, capsys):
    proxy = Flask("proxy")  # the links taken, then the storage unreachable for a minute
    proxy.post("/parseGoodreadsLinks", endpoint="post")(
        lambda: ({"batch_id": "b1", "counts": {"links": 1}, "results": []}, 202)
    )
    proxy.get("/batches/b1", endpoint="batch")(
        lambda: ({"message": "the storage is unreachable"}, 503, {"Retry-After": "60"})
    )
    links = tmp_path / "links.txt"
    links.write_text(BOOK.format(961) + "\n")
    with served(proxy) as server:
        assert run_client(server, links, "--wait", "--timeout", "0.5") == GAVE_UP
    printed = capsys.readouterr().err
    assert (
        "Gave up waiting (--timeout): the server answered 503 (the storage is unreachable) and asked to wait "
        "60 s, past --timeout" in printed
    )
    assert "error:" not in printed


def test_import_sends_the_export_as_it_is_and_reports_each_row_it_could_not_use(
    server, client, run_jobs, tmp_path, capsys
):
    stored = client.post("/parseGoodreadsLinks", data=EXPORT.read_bytes(), content_type="text/csv")
    assert stored.status_code == 202
    run_jobs()  # its five books stored, so that the import below finishes at once
    out = tmp_path / "books.csv"
    assert main(["import", str(EXPORT), "--server", server, "--wait", "--out", str(out), "--interval", "0.05"]) == 1
    printed = capsys.readouterr()
    assert "Sent 7 rows in 1 batch: " in printed.err
    assert "Wrote 5 records to" in printed.err
    assert printed.out.splitlines() == [
        "Done: 5 stored, 2 rejected",
        "      1 rejected: line 6: the row has no Book Id",
        "      1 rejected: line 10: the book id 'n/a' is not a positive number of at most 12 digits",
    ]
    books = sorted(row["book_id"] for row in csv.DictReader(io.StringIO(out.read_text())))
    assert books == sorted(["44767458", "5907", "18144590", "13079982", "2767052"])


def test_import_reads_standard_input(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Book Id,Title\r\n971,Dune\r\n")))
    assert main(["import", "-", "--server", server]) == 0
    assert "Sent 1 row in 1 batch: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "status", "said"),
    [
        (b"Title,Author\nDune,Frank Herbert\n", 2, "error: the server refused the links: the CSV has no 'Book Id'"),
        (b"Book Id\n" + b"1\n" * 3, 2, "error: the server refused the links: at most 2 links or rows per request"),
        (b"Book Id\nabc\n", 1, "1 rejected: line 2: the book id 'abc' is not a positive number"),
        (b" \n", 2, "is empty"),
        (None, 2, "cannot read"),
    ],
    ids=["no Book Id column", "too many rows", "no usable row", "empty", "missing"],
)
def test_import_of_a_file_the_server_cannot_take_says_why(configure, tmp_path, capsys, content, status, said):
    app = create_app(configure(MAX_LINKS_PER_REQUEST="2"))
    export = tmp_path / "export.csv"
    if content is not None:
        export.write_bytes(content)
    with served(app) as server:
        try:
            ended = main(["import", str(export), "--server", server, "--wait"])
        except SystemExit as usage_error:  # argparse's own exit
            ended = usage_error.code
    printed = capsys.readouterr()
    assert (ended, said in printed.out + printed.err) == (status, True), printed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--out", "books.csv"], "--out needs --wait"),
        (
            ["--wait", "--out", "books.txt"],
            "--out writes .csv or .jsonl files, by the extension; 'books.txt' has neither",
        ),
        (["--wait", "--out", "books"], "--out writes .csv or .jsonl files, by the extension; 'books' has neither"),
    ],
)
def test_a_misused_out_shows_the_usage_of_submit_and_writes_nothing(options, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "links.txt").write_text(BOOK.format(1) + "\n")
    with pytest.raises(SystemExit) as exit:
        main(["submit", "links.txt", "--server", "http://127.0.0.1:9", *options])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: python -m client submit [-h]"), error
    assert error.rstrip().endswith(f"python -m client submit: error: {message}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["links.txt"]


def test_a_server_that_cannot_be_reached_is_said_plainly_in_one_line(tmp_path, capsys):
    links = tmp_path / "links.txt"
    links.write_text(BOOK.format(1) + "\n")
    assert run_client("http://127.0.0.1:9", links) == 2  # nothing listens on port 9
    error = capsys.readouterr().err
    assert error == (
        "error: cannot reach the server at http://127.0.0.1:9: nothing answers there "
        "(is the service running, --server right?)\n"
    )


def test_a_server_that_does_not_answer_in_time_is_said_plainly(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "REQUEST_TIMEOUT", 0.3)
    links = tmp_path / "links.txt"
    links.write_text(BOOK.format(1) + "\n")
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        server = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert run_client(server, links) == 2
    assert capsys.readouterr().err == f"error: the server at {server} did not answer within 0.3 s\n"


def test_a_host_name_that_does_not_resolve_is_said_plainly():
    pool = HTTPConnectionPool("books.invalid", 80)
    cause = NameResolutionError("books.invalid", HTTPConnection("books.invalid"), socket.gaierror(-2, "unknown"))
    error = requests.ConnectionError(MaxRetryError(pool, "/parseGoodreadsLinks", cause))
    assert cli.unreachable("http://books.invalid", error) == (
        "cannot reach the server at http://books.invalid: its host name does not resolve (check --server)"
    )
