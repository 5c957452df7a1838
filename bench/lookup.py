"""Lookups: GET /getBookInfo for 1,000 stored books with rotating link forms, against a bare
Flask route returning a constant JSON body under the same gunicorn command.

    pipenv run python bench/lookup.py [--seconds 5] [--rounds 6] [--warmup 5] [--connections 8] [--workers 1,2,4]

Needs wrk (apt-get install wrk). Starts its own redis-server, stores 1,000 records (the
fixture page, parsed), and serves both apps at once, each with 1, 2 and 4 (Compose's
WEB_CONCURRENCY) gunicorn workers, wrk running on loopback against one at a time.

Both apps are measured alike, so that the machine's drift and the order do not favour either:

- a warm-up run of ``--warmup`` seconds against each, not counted in the ratio: each web
  process of the service fills its record cache there (a long-running service answers from
  a full one; a fresh process misses each book once). Its rate is printed, as "cold".
- then ``--rounds`` rounds of ``--seconds`` each: one run of each app, back to back,
  alternating which goes first. Each app's figures are the medians over the rounds, with
  their spread (min-max). The ratios are taken round by round, the two runs of a round being
  side by side in time, so that the machine's drift over a longer span cancels out; the
  ratio printed is the median of the rounds' ratios, with their spread.
- CPU per 1,000 requests: the user and system CPU time of the app's gunicorn processes
  (master and workers) and of redis-server during each run, divided by the requests wrk
  counted. wrk and whatever else runs on the machine take CPU from the apps, which moves
  requests/s by tens of percent from one run to the next, but hardly changes what a request
  costs; the ratio of the two costs (reference / project) is the steadier figure.
- "misses" is the share of the measured requests that read their record from Redis (its
  ``GET`` calls, from ``INFO commandstats``), close to none once the caches are warm.
- "busiest" is the largest share of the workers' CPU one worker took: each gevent worker
  keeps the keep-alive connections it accepted, so wrk's 8 connections can sit unevenly on
  the workers for a whole run (a cause of the spread with 2 and 4 workers, for both apps).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
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
APPS = {"project": "app:create_app()", "reference": "bench.reference_app:create_app()"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


@dataclass(frozen=True)
class WrkRun:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers


def wrk_run(url: str, script: Path, seconds: int, connections: int) -> WrkRun:
    # wrk on the machine's last CPU: left to the scheduler, its two threads sometimes share a
    # core with a single gunicorn worker for a whole run, and halve that run's rate.
    output = subprocess.run(
        [
            "taskset",
            "-c",
            str((os.cpu_count() or 1) - 1),
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkRun(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        requests=int(re.search(r"(\d+) requests in", output).group(1)),
        p50_ms=_latency_ms(output, "50%"),
        p99_ms=_latency_ms(output, "99%"),
        errors=int(non_2xx.group(1)) if non_2xx else 0,
    )


def run_wrk_latencies(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, float, int]:
    """Requests per second, p50 and p99 latency in ms, and the number of non-2xx answers."""
    run = wrk_run(url, script, seconds, connections)
    return run.rps, run.p50_ms, run.p99_ms, run.errors


def _latency_ms(output: str, percentile: str) -> float:
    found = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output)
    return float(found.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[found.group(2)]


def store_books(redis: Redis) -> None:
    """The records the lookups ask for: books 100000 to 100000 + BOOKS - 1."""
    store = BookStore(redis)
    for n in range(BOOKS):
        book_id = str(100_000 + n)
        store.save_record(book_id, parse_book_page(book_page(book_id), book_id))


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User plus system CPU seconds each process has used so far (0 for one that is gone)."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            seconds[pid] = 0.0
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return seconds


def gunicorn_workers(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


@dataclass(frozen=True)
class Measured:
    run: WrkRun
    cpu_ms_per_1000: float
    busiest: float  # the largest share of the workers' CPU one worker took
    redis_gets: int  # record reads that reached Redis: the record cache's misses


def measure(service: Service, redis_pid: int, script: Path, seconds: int, connections: int) -> Measured:
    assert service.web is not None
    workers = gunicorn_workers(service.web.pid)
    pids = [service.web.pid, *workers, redis_pid]
    redis = Redis.from_url(service.env["REDIS_URL"])
    gets_before = redis_gets(redis)
    before = cpu_seconds(pids)
    run = wrk_run(service.url, script, seconds, connections)
    after = cpu_seconds(pids)
    gets = redis_gets(redis) - gets_before
    if run.errors:
        sys.exit(f"{run.errors} non-2xx answers from {service.url}")
    used = {pid: after[pid] - before[pid] for pid in pids}
    workers_cpu = sum(used[pid] for pid in workers)
    return Measured(
        run,
        sum(used.values()) * 1e6 / max(run.requests, 1),
        max(used[pid] for pid in workers) / workers_cpu if workers_cpu else 0.0,
        gets,
    )


def redis_gets(redis: Redis) -> int:
    return int(redis.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


def spread(values: list[float], form: str) -> str:
    return f"{statistics.median(values):{form}} ({min(values):{form}}-{max(values):{form}})"


def compare(
    redis_server: RedisServer, folder: Path, script: Path, workers: int, args: argparse.Namespace, apps: dict[str, str]
) -> None:
    """Both apps with this many workers: a line each, and their ratios."""
    assert redis_server.process is not None
    services = {}
    for name in apps:
        log_dir = folder / f"{name}-{workers}"
        log_dir.mkdir()
        services[name] = Service(redis_server.url, "http://127.0.0.1:9", log_dir, WEB_CONCURRENCY=str(workers))
    try:
        for name, service in services.items():
            service.start_web(apps[name])
        measured: dict[str, list[Measured]] = {name: [] for name in apps}
        cold = {
            name: measure(service, redis_server.process.pid, script, args.warmup, args.connections)
            for name, service in services.items()
        }
        for round_number in range(args.rounds):
            order = list(apps) if round_number % 2 == 0 else list(reversed(apps))
            for name in order:
                measured[name].append(
                    measure(services[name], redis_server.process.pid, script, args.seconds, args.connections)
                )
        for name, service in services.items():
            outages = service.logs().count("record cache off")
            if outages:
                print(f"  note: {name}'s record cache went off {outages} times during the runs")
    finally:
        for service in services.values():
            service.stop()
    for name, runs in measured.items():
        rps = [m.run.rps for m in runs]
        misses = sum(m.redis_gets for m in runs) / sum(m.run.requests for m in runs)
        cpu = [m.cpu_ms_per_1000 for m in runs]
        print(
            f"{workers:>7} {name:>9} {spread(rps, ',.0f'):>22} {cold[name].run.rps:>7,.0f} "
            f"{statistics.median([m.run.p50_ms for m in runs]):>6.2f} "
            f"{statistics.median([m.run.p99_ms for m in runs]):>6.2f} {spread(cpu, '.0f'):>16} "
            f"{max(m.busiest for m in runs):>7.0%} {misses:>6.1%}"
        )
    rounds = list(zip(measured["project"], measured["reference"], strict=True))
    speed = [ours.run.rps / reference.run.rps for ours, reference in rounds]
    cost = [reference.cpu_ms_per_1000 / ours.cpu_ms_per_1000 for ours, reference in rounds]
    print(f"{'':>7} {'ratio':>9} requests/s {spread(speed, '.0%')}, CPU per request {spread(cost, '.0%')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=6, help="measured runs per app and number of workers")
    parser.add_argument("--warmup", type=int, default=5, help="length of the uncounted first run against each app")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", default="1,2,4", help="the numbers of gunicorn workers to measure with")
    parser.add_argument(
        "--reference-body",
        choices=("constant", "record"),
        default="constant",
        help="the reference answers a small constant body, or the same bytes as a lookup of the fixture book",
    )
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
        apps = {**APPS, "reference": f"bench.reference_app:create_app({args.reference_body!r})"}
        print(
            f"{BOOKS} stored books, {args.connections} connections; per app and number of workers a "
            f"{args.warmup} s warm-up (cold), then {args.rounds} alternating runs of {args.seconds} s: "
            "median (min-max)"
        )
        print(
            f"{'workers':>7} {'app':>9} {'req/s':>22} {'cold':>7} {'p50 ms':>6} {'p99 ms':>6} "
            f"{'CPU ms/1000 req':>16} {'busiest':>7} {'misses':>6}"
        )
        for workers in (int(count) for count in args.workers.split(",")):
            compare(redis_server, folder, script, workers, args, apps)
    finally:
        redis_server.cleanup()
        scratch.cleanup()


if __name__ == "__main__":
    main()
