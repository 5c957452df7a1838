"""The command-line client against the running service."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from client.cli import TOKEN_VARIABLE, UNAUTHORIZED, read_links, summary
from tests.processes import ROOT

pytestmark = pytest.mark.e2e


def run_cli(service, *args: str, stdin: str | None = None, token: str | None = None) -> subprocess.CompletedProcess:
    """The client in its own process; with ``token`` in its environment variable, else none at all."""
    env = {name: value for name, value in service.env.items() if name != TOKEN_VARIABLE}
    return subprocess.run(
        [sys.executable, "-m", "client", "submit", *args, "--server", service.url, "--interval", "0.3"],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env | ({TOKEN_VARIABLE: token} if token else {}),
    )


def test_submit_wait_and_save_csv(make_service, origin, tmp_path):
    service = make_service(RETRY_MAX="0")
    origin.behave("802", "404")
    links = tmp_path / "links.txt"
    more = "".join(f"goodreads.com/book/show/{n}\n" for n in range(810, 815))
    links.write_text(
        "# my reading list\n\nhttps://www.goodreads.com/book/show/801.One\n"
        "goodreads.com/book/show/802\n  https://m.goodreads.com/book/show/803  \n"
        "https://example.com/not-a-book\n" + more
    )
    out = tmp_path / "books.csv"
    result = run_cli(service, str(links), "--wait", "--out", str(out), "--batch-size", "4")
    assert result.returncode == 1, result.stderr  # one book not found, one link rejected
    assert "Sent 9 links in 3 batches" in result.stderr
    assert "100%" in result.stderr and "stored=7" in result.stderr  # the progress bar, with counts per status
    assert "Done: 7 stored, 1 not_found, 1 rejected" in result.stdout
    assert "1 not_found: Goodreads answered HTTP 404" in result.stdout
    assert "1 rejected: 'example.com' is not a Goodreads host" in result.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(row["book_id"] for row in rows) == ["801", "803", "810", "811", "812", "813", "814"]
    assert out.read_text().count("book_id,url,title") == 1  # one header for three batches


def test_submit_from_stdin_to_jsonl(make_service, tmp_path):
    service = make_service()
    out = tmp_path / "books.jsonl"
    result = run_cli(service, "-", "--wait", "--out", str(out), stdin="goodreads.com/book/show/821\n")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["book_id"] for line in out.read_text().splitlines()] == ["821"]
    assert "Done: 1 stored" in result.stdout


def test_giving_up_saves_what_is_stored_and_says_why_books_retry(make_service, origin, tmp_path):
    service = make_service(RETRY_INTERVALS="60")
    origin.behave("831", "503")  # then retried a minute later, long after the client gave up
    links = tmp_path / "links.txt"
    links.write_text("goodreads.com/book/show/831\ngoodreads.com/book/show/832\n")
    out = tmp_path / "books.csv"
    result = run_cli(service, str(links), "--wait", "--out", str(out), "--timeout", "3")
    assert result.returncode == 3, result.stderr
    assert "retrying=1 (failed: Goodreads failed to answer (HTTP 503))" in result.stderr
    assert "Gave up waiting (--timeout): 1 retrying, 1 stored" in result.stdout
    assert [row["book_id"] for row in csv.DictReader(io.StringIO(out.read_text()))] == ["832"]


def test_every_link_reaches_a_service_that_wants_a_token_and_allows_one_post_a_second(make_service, tmp_path):
    token = "e2e-t0ken-of-the-client"
    service = make_service(POST_BUDGET="1", POST_BUDGET_WINDOW="1", API_TOKENS=token)
    links = tmp_path / "links.txt"
    links.write_text("".join(f"goodreads.com/book/show/{n}\n" for n in (841, 842)))
    out = tmp_path / "books.jsonl"

    without = run_cli(service, str(links))
    assert without.returncode == UNAUTHORIZED, without.stderr
    assert f"the server takes links only with an API token: set {TOKEN_VARIABLE}" in without.stderr

    result = run_cli(service, str(links), "--batch-size", "1", "--wait", "--out", str(out), token=token)
    assert result.returncode == 0, result.stderr
    assert "Sent 2 links in 2 batches" in result.stderr
    assert "Waiting 1 s, then sending links " in result.stderr  # the POST budget, waited out
    assert "Done: 2 stored" in result.stdout
    assert sorted(json.loads(line)["book_id"] for line in out.read_text().splitlines()) == ["841", "842"]
    assert token not in result.stdout + result.stderr + service.logs()


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    links = tmp_path / "links.txt"
    links.write_text("goodreads.com/book/show/1\n")
    result = subprocess.run(
        [sys.executable, "-m", "client", "submit", str(links), "--server", "http://127.0.0.1:9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot reach the server" in result.stderr


def test_read_links_skips_blanks_and_comments():
    assert read_links(io.StringIO("a\n\n  # c\n b \n")) == ["a", "b"]


def test_summary_counts_and_reasons():
    batches = [
        {
            "counts": {"stored": 1, "failed": 1},
            "links": [{"status": "stored"}, {"status": "failed", "reason": "Goodreads failed to answer (HTTP 500)"}],
        }
    ]
    report, all_stored = summary(batches, [{"outcome": "rejected", "reason": "no"}])
    assert not all_stored
    assert report.splitlines()[0] == "Done: 1 stored, 1 failed, 1 rejected"
