"""An export longer than the web process's timeout arrives whole, through the Procfile's web
process, with flat memory: gunicorn's gevent worker tells the master it is alive from its own
greenlet, every second, however long a response streams (gunicorn/workers/ggevent.py), so the
master's ``timeout`` never kills it. The timeout is set short, 3 s, through gunicorn's own
``GUNICORN_CMD_ARGS``; the Procfile's command stays the same."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import time

import pytest
import requests
from redis import Redis

from books.links import BookId
from books.record import RECORD_FIELDS
from books.store import BookStore
from tests.origin import book_page
from tests.processes import procfile_command, tree_rss_mb
from worker.parser import parse_book_page

pytestmark = pytest.mark.e2e

RECORDS = 12_000
TIMEOUT = 3
READ_RATE = 1_200_000  # bytes per second


def store_records(redis: Redis) -> list[str]:
    store = BookStore(redis)
    template = parse_book_page(book_page("1"), BookId("1"))
    assert isinstance(template, dict)
    book_ids = [str(700_000 + n) for n in range(RECORDS)]
    for book_id in book_ids:
        store.save_record(book_id, {**template, "book_id": book_id, "fetched_at": "2026-07-01T00:00:00+00:00"})
    return book_ids


def test_the_timeout_setting_reaches_the_procfiles_gunicorn(make_service):
    service = make_service(workers=0, GUNICORN_CMD_ARGS=f"--timeout {TIMEOUT}")
    printed = subprocess.run(
        [*procfile_command("web"), "--print-config"], env=service.env, capture_output=True, text=True, timeout=30
    )
    assert re.search(rf"^timeout += {TIMEOUT}$", printed.stdout, re.MULTILINE), printed.stdout


@pytest.mark.parametrize("export_format", ["jsonl", "csv"])
def test_an_export_longer_than_the_timeout_arrives_whole_with_flat_memory(make_service, redis, export_format):
    book_ids = store_records(redis)
    service = make_service(workers=0, GUNICORN_CMD_ARGS=f"--timeout {TIMEOUT}")
    assert service.web is not None
    body, samples = bytearray(), []
    started = time.monotonic()
    with requests.get(f"{service.url}/books", params={"format": export_format}, stream=True, timeout=30) as answer:
        assert answer.status_code == 200
        for chunk in answer.iter_content(64 * 1024):
            body += chunk
            samples.append((time.monotonic() - started, tree_rss_mb(service.web.pid)))
            # A client reading at 1.2 MB/s: the stream outlasts the timeout however fast the host,
            # and the web process must hold back rather than buffer what the client has not read.
            time.sleep(max(0.0, len(body) / READ_RATE - (time.monotonic() - started)))
    took = time.monotonic() - started
    assert took > 2 * TIMEOUT, f"the export took {took:.1f} s: too quick to outlast the timeout"

    text = body.decode("utf-8")
    if export_format == "jsonl":
        assert text.endswith("\n")
        exported = [json.loads(line)["book_id"] for line in text.splitlines()]
    else:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows[0] == list(RECORD_FIELDS)
        assert all(len(row) == len(RECORD_FIELDS) for row in rows)
        exported = [row[RECORD_FIELDS.index("book_id")] for row in rows[1:]]
    assert sorted(exported) == sorted(book_ids), "every record exactly once"

    # Flat: the records are about 80 MB as JSON; the web process grows by a small part of it.
    settled = [rss for at, rss in samples if at > 1.0]
    assert max(settled) - min(settled) < 25, samples[:: max(1, len(samples) // 20)]
    log = service.logs()
    assert "WORKER TIMEOUT" not in log and "Booting worker" in log
    assert log.count("Booting worker") == 1, "the web worker was never replaced"
    print(
        f"{export_format}: {RECORDS} records, {len(body) / 1e6:.0f} MB in {took:.1f} s (timeout {TIMEOUT} s); "
        f"web RSS {min(settled):.0f}-{max(settled):.0f} MB"
    )
