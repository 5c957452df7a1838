"""Lookups counted in instructions: what one GET /getBookInfo costs the gunicorn worker that
serves it, against the bare Flask route of bench/reference_app.py under the same gunicorn
command, counted by valgrind's callgrind.

    pipenv run python bench/lookup_instructions.py [--requests 300,1500]

Needs valgrind (apt-get install valgrind). Requests per second on a shared 2-core machine
move by tens of percent from one run to the next (bench/lookup.py prints the spread); an
instruction count hardly moves, whatever else the machine does. So this prints the other
figure of the lookups' bar: the worker's instructions per request, ours against the
reference's. For each app and each request count N, it starts the Procfile's web command
(one gunicorn worker) under callgrind, asks each of the 1,000 books once (the worker's
record cache fills, as in a long-running service), then N more lookups over one keep-alive
connection with the rotating link forms of bench/lookup.py, and stops gunicorn. The cost
of a request is the difference between the worker's totals at the two counts divided by
the difference in requests: start-up, warm-up and shutdown cancel out.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from redis import Redis

from bench.lookup import APPS, BOOKS, FORMS, store_books
from tests.processes import RedisServer, Service, procfile_command, wait_until

WARM_UP = BOOKS


def lookup_paths() -> list[str]:
    links = [FORMS[n % len(FORMS)].format(id=100_000 + n) for n in range(BOOKS)]
    return [f"/getBookInfo?url={quote(link, safe='')}" for link in links]


def ask(port: int, paths: list[str], count: int) -> None:
    """``count`` lookups in turn over one keep-alive connection; each must answer 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for n in range(count):
        connection.request("GET", paths[n % len(paths)])
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            sys.exit(f"{paths[n % len(paths)]} answered {answer.status}")
    connection.close()


def worker_instructions(redis_url: str, folder: Path, app: str, paths: list[str], count: int) -> int:
    """The instructions the gunicorn worker executed in a run of WARM_UP + ``count`` lookups."""
    run = folder / f"{app.split(':')[0]}-{count}"
    run.mkdir()
    # One worker; a long timeout, as everything runs some fifty times slower under valgrind.
    service = Service(
        redis_url,
        "http://127.0.0.1:9",
        run,
        WEB_CONCURRENCY="1",
        REDIS_SOCKET_TIMEOUT="60",
        GUNICORN_CMD_ARGS="--timeout 600",
    )
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={run}/callgrind.%p",
        *procfile_command("web"),
        app,
    ]
    gunicorn = service.spawn(command, "web")
    try:
        wait_until(service._web_answers, 300, 0.5, "gunicorn under valgrind to answer")
        ask(service.port, paths, WARM_UP)
        ask(service.port, paths, count)
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(300)
    totals = [
        int(re.search(rb"^(?:summary|totals): (\d+)", path.read_bytes(), re.M).group(1))
        for path in run.glob("callgrind.*")
    ]
    return max(totals)  # the worker's: the master only waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", default="300,1500", help="the two counts of measured lookups")
    args = parser.parse_args()
    few, many = sorted(int(count) for count in args.requests.split(","))
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind: apt-get install valgrind")
    scratch = tempfile.TemporaryDirectory()
    redis_server = RedisServer()
    redis_server.start()
    try:
        store_books(Redis(port=redis_server.port))
        paths = lookup_paths()
        print(
            f"instructions of one gunicorn worker per lookup: ({many:,} - {few:,} requests) after {WARM_UP:,} warm-up"
        )
        per_request = {}
        for name, app in APPS.items():
            low, high = (worker_instructions(redis_server.url, Path(scratch.name), app, paths, n) for n in (few, many))
            per_request[name] = (high - low) / (many - few)
            print(f"{name:>10} {per_request[name]:>12,.0f} instructions per request")
        ratio = per_request["reference"] / per_request["project"]
        print(f"     ratio {ratio:>12.0%} (the reference's cost over ours: the share of its speed ours keeps)")
    finally:
        redis_server.cleanup()
        scratch.cleanup()


if __name__ == "__main__":
    main()
