"""The README's demo as a user runs it: ``python -m tests.origin honcho start`` (the sample
origin and the Procfile under honcho), then the client's example run against it. What the user
sees is what the README shows: book 404404 not found, the others stored, at many books a
second (the demo's own pages are not fetched at FETCH_RATE's 1 a second)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import requests

from tests.processes import Honcho, free_port

pytestmark = pytest.mark.e2e

LINKS = [f"https://www.goodreads.com/book/show/{n}" for n in range(1, 42)] + [
    "https://www.goodreads.com/book/show/404404",
    "https://example.com/book/show/1",
]


def test_the_demo_and_the_clients_example_answer_as_the_readme_shows(redis, redis_server, tmp_path):
    # The README's demo command; honcho told to read no .env, as on a fresh clone.
    command = [sys.executable, "-m", "tests.origin", "--port", str(free_port()), "honcho", "start", "-e", os.devnull]
    with Honcho(command, redis_server.url, tmp_path / "demo.log") as demo:
        demo.wait_for_web()
        server, env = demo.url, demo.env
        links = tmp_path / "links.txt"
        links.write_text("\n".join(LINKS) + "\n")
        began = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "client", "submit", str(links), "--wait", "--out", "books.csv", "--server", server],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - began
        assert result.returncode == 1, result.stderr  # one book not found, one link rejected
        assert result.stdout.splitlines()[:3] == [
            "Done: 41 stored, 1 not_found, 1 rejected",
            "      1 not_found: Goodreads answered HTTP 404",
            "      1 rejected: 'example.com' is not a Goodreads host",
        ]
        assert "Sent 43 links in 1 batch" in result.stderr
        assert "Wrote 41 records to books.csv" in result.stderr
        rates = [float(rate) for rate in re.findall(r"([\d.]+)book/s", result.stderr)]
        print(f"the client's bar: {rates[-1]:.2f} book/s; 42 books settled in {took:.1f} s with --interval 2")
        # At FETCH_RATE's default of 1 a second, 42 books took over 40 s; 4/s leaves room for a busy machine.
        assert rates[-1] >= 4
        lookup = requests.get(f"{server}/getBookInfo", params={"url": LINKS[41]}, timeout=10)
        assert (lookup.status_code, lookup.json()["status"]) == (404, "not_found")
