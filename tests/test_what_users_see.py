"""What a user sees of the real processes matches the README: the bare address points the way,
a batch's counts alone end its pages, a retrying book says its attempts and when the next one
comes, a retried failure is one log line, and ``.env.example`` copied as it is starts honcho."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

import pytest
import requests

from tests.processes import Honcho, wait_until

pytestmark = pytest.mark.e2e

BOOK = "https://www.goodreads.com/book/show/{}"


def test_the_answers_and_the_logs_are_the_ones_the_readme_shows(make_service, origin):
    origin.behave("503", "503")
    service = make_service(RETRY_MAX="2", RETRY_INTERVALS="60")
    root = requests.get(f"{service.url}/", timeout=10)
    assert (root.status_code, root.json()["links"]["openapi"]) == (200, "/openapi.json")
    assert requests.get(f"{service.url}{root.json()['links']['dashboard']}/", timeout=10).status_code == 200

    batch = requests.post(f"{service.url}/parseGoodreadsLinks", json=[BOOK.format(1), BOOK.format(503)], timeout=10)
    counts_only = requests.get(f"{service.url}/batches/{batch.json()['batch_id']}?limit=0", timeout=10).json()
    assert (counts_only["links"], counts_only["next_cursor"]) == ([], None)

    def retrying() -> dict | None:
        body = requests.get(f"{service.url}/getBookInfo", params={"url": BOOK.format(503)}, timeout=10).json()
        return body if body["status"] == "retrying" else None

    body = wait_until(retrying, 30, 0.2, "the book retrying")
    assert body["attempts"] == 1 and body["reason"] == "failed: Goodreads failed to answer (HTTP 503)"
    last = datetime.fromisoformat(body["last_attempt_at"]).timestamp()
    following = datetime.fromisoformat(body["next_attempt_at"]).timestamp()
    assert abs(last - time.time()) < 30 and 50 < following - last <= 61

    events = [json.loads(line) for line in (service.log_dir / "worker-0.log").read_text().splitlines()]
    failed = [event for event in events if event.get("book_id") == "503" and event["message"] == "book attempt"]
    assert [(event["level"], event["outcome"]) for event in failed] == [("warning", "retrying")]
    assert not [event for event in events if event["level"] == "error" or "Traceback" in event["message"]]


def test_the_example_environment_copied_as_it_is_starts_under_honcho(redis_server, tmp_path):
    """``cp .env.example .env`` and ``honcho start``: the web answers (a dashboard user without
    a password stopped both processes at once)."""
    command = [sys.executable, "-m", "honcho", "start", "-e", ".env.example"]
    with Honcho(command, redis_server.url, tmp_path / "honcho.log") as honcho:
        honcho.wait_for_web()
    assert b"configuration error" not in (tmp_path / "honcho.log").read_bytes()
