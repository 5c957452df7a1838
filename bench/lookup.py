"""Lookups: GET /getBookInfo for 1,000 stored books with rotating link forms, against a bare
Flask route returning a constant JSON body under the same gunicorn command.

    pipenv run python bench/lookup.py [--seconds 10] [--connections 8]

Needs wrk (apt-get install wrk). Starts its own redis-server, stores 1,000 records (the
fixture page, parsed), and runs wrk on loopback against each app, with 1, 2 and 4
(Compose's WEB_CONCURRENCY) gunicorn workers.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from redis import Redis

from books.store import BookStore
from tests.origin import book_page
from tests.processes import RedisServer, Service
from worker.parser import parse_book_page

FORMS = [
    "https://www.goodreads.com/book/show/{id}",
    "http://goodreads.com/book/show/{id}.Title",
    "https://m.goodreads.com/en/book/show/{id}-title?from_search=true",
    "goodreads.com/book/show/{id}",
]
BOOKS = 1000


def wrk_script(folder: Path) -> Path:
    links = [FORMS[n % len(FORMS)].format(id=100_000 + n) for n in range(BOOKS)]
    paths = [f"/getBookInfo?url={quote(link, safe='')}" for link in links]
    script = folder / "rotate.lua"
    script.write_text(
        "paths = {" + ",".join(f'"{path}"' for path in paths) + "}\ncounter = 0\n"
        "request = function()\n  counter = counter + 1\n"
        "  return wrk.format('GET', paths[(counter % #paths) + 1])\nend\n"
    )
    return script


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, int]:
    """Requests per second, p99 latency in ms, and the number of non-2xx answers."""
    rps, _, p99_ms, errors = run_wrk_latencies(url, script, seconds, connections)
    return rps, p99_ms, errors


def run_wrk_latencies(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, float, int]:
    """Requests per second, p50 and p99 latency in ms, and the number of non-2xx answers."""
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rps, _latency_ms(output, "50%"), _latency_ms(output, "99%"), int(non_2xx.group(1)) if non_2xx else 0


def _latency_ms(output: str, percentile: str) -> float:
    found = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output)
    return float(found.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[found.group(2)]


def store_books(redis: Redis) -> None:
    """The records the lookups ask for: books 100000 to 100000 + BOOKS - 1."""
    store = BookStore(redis)
    for n in range(BOOKS):
        book_id = str(100_000 + n)
        store.save_record(book_id, parse_book_page(book_page(book_id), book_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt-get install wrk")
    scratch = tempfile.TemporaryDirectory()
    folder = Path(scratch.name)
    redis_server = RedisServer()
    redis_server.start()
    try:
        store_books(Redis(port=redis_server.port))
        script = wrk_script(folder)
        print(f"{BOOKS} stored books, {args.connections} connections, {args.seconds} s per run")
        print(
            f"{'gunicorn workers':>16} {'project req/s':>14} {'p99 ms':>7} {'reference req/s':>16} {'p99 ms':>7} "
            f"{'ratio':>6}"
        )
        for workers in (1, 2, 4):
            results = []
            for app in ("app:create_app()", "bench.reference_app:create_app()"):
                service = Service(redis_server.url, "http://127.0.0.1:9", folder, WEB_CONCURRENCY=str(workers))
                service.start_web(app)
                try:
                    rps, p99, errors = run_wrk(service.url, script, args.seconds, args.connections)
                    if errors:
                        sys.exit(f"{errors} non-2xx answers from {app}")
                    results.append((rps, p99))
                finally:
                    service.stop()
            (ours, our_p99), (reference, reference_p99) = results
            print(
                f"{workers:>16} {ours:>14,.0f} {our_p99:>7.2f} {reference:>16,.0f} {reference_p99:>7.2f} "
                f"{ours / reference:>5.0%}"
            )
    finally:
        redis_server.cleanup()
        scratch.cleanup()


if __name__ == "__main__":
    main()
