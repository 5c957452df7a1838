"""A challenging Goodreads, then the challenge lifts: what reaches the origin, how fast the
queue drains after. The real processes (tests/processes.py) against the local origin.

    pipenv run python bench/challenge.py [--books 1000] [--workers 4] [--challenged 120]
        [--intervals 5,10,20,40] [--rate 20] [--baseline-books 100]

Scaled from production: the challenge lasts ``--challenged`` seconds (not hours) and the
probe intervals are seconds (default ``ORIGIN_PROBE_INTERVALS`` is 30,60,120,300,900).
Every book is challenged (HTTP 202, empty, ``x-amzn-waf-action: challenge``) until the
challenge lifts; then every book page is served. Printed: the requests that reached the
origin while challenged (target: the probes alone, under 20), and the time from the lift to
the last book stored against one probe interval plus books / FETCH_RATE.

The baseline, in the same run: the fleet pause turned off (``ORIGIN_PAUSE_AFTER`` above the
number of books), ``--baseline-books`` books against the same challenge with RETRY_MAX=4 and
1 s retries, so each book spends its retries as the service did before: requests per book,
and the ratio to this run's requests per book.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests
from redis import Redis

from tests.origin import Origin
from tests.processes import RedisServer, Service, wait_until


def links(count: int) -> list[str]:
    return [f"https://www.goodreads.com/book/show/{10_000 + n}" for n in range(count)]


def stored_count(redis: Redis, count: int) -> int:
    with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.exists(f"goodreads:book:{10_000 + n}")
        return sum(pipe.execute())


def settled_count(redis: Redis, count: int) -> int:
    with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.hget(f"goodreads:status:{10_000 + n}", "state")
        return sum(state in (b"blocked", b"failed", b"stored") for state in pipe.execute())


def run(redis_server: RedisServer, args: argparse.Namespace, workdir: Path) -> dict:
    redis = Redis.from_url(redis_server.url)
    redis.flushall()
    origin = Origin()
    origin.everyone("waf")
    origin.start()
    service = Service(
        redis_server.url,
        origin.url,
        workdir,
        FETCH_RATE=str(args.rate),
        ORIGIN_PROBE_INTERVALS=args.intervals,
        RETRY_MAX="4",
        RETRY_INTERVALS="15,60,300,900",
    )
    try:
        service.start_web()
        for _ in range(args.workers):
            service.start_worker()
        requests.post(f"{service.url}/parseGoodreadsLinks", json=links(args.books), timeout=60)
        time.sleep(args.challenged)
        challenged_requests = len(origin.requests())
        probes = int(redis.hget("goodreads:origin", "probes") or 0)
        origin.everyone("page")
        lifted = time.monotonic()
        wait_until(lambda: stored_count(redis, args.books) == args.books, 600, 0.2, "every book to be stored")
        drained = time.monotonic() - lifted
        return {
            "challenged_requests": challenged_requests,
            "probes": probes,
            "drain_seconds": drained,
            "requests_after_lift": len(origin.requests()) - challenged_requests,
            "total_requests": len(origin.requests()),
        }
    finally:
        service.stop()
        origin.stop()


def baseline(redis_server: RedisServer, args: argparse.Namespace, workdir: Path) -> float:
    """Requests per book with the fleet pause off: each book spends its own retries."""
    redis = Redis.from_url(redis_server.url)
    redis.flushall()
    origin = Origin()
    origin.everyone("waf")
    origin.start()
    service = Service(
        redis_server.url,
        origin.url,
        workdir,
        FETCH_RATE="0",
        ORIGIN_PAUSE_AFTER=str(args.baseline_books + 1),
        RETRY_MAX="4",
        RETRY_INTERVALS="1",
    )
    try:
        service.start_web()
        for _ in range(args.workers):
            service.start_worker()
        requests.post(f"{service.url}/parseGoodreadsLinks", json=links(args.baseline_books), timeout=60)
        wait_until(lambda: settled_count(redis, args.baseline_books) == args.baseline_books, 300, 0.5, "baseline")
        return len(origin.requests()) / args.baseline_books
    finally:
        service.stop()
        origin.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--challenged", type=float, default=120)
    parser.add_argument("--intervals", default="5,10,20,40")
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--baseline-books", type=int, default=100)
    args = parser.parse_args()
    redis_server = RedisServer()
    redis_server.start()
    try:
        with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
            result = run(redis_server, args, Path(first))
            per_book_before = baseline(redis_server, args, Path(second))
    finally:
        redis_server.cleanup()
    longest = max(int(part) for part in args.intervals.split(","))
    target = longest + args.books / args.rate
    per_book_now = result["total_requests"] / args.books
    challenged_per_book = result["challenged_requests"] / args.books
    print(f"{args.books} books, {args.workers} workers, challenged {args.challenged:g} s, probes at {args.intervals} s")
    print(f"requests reaching the origin while challenged: {result['challenged_requests']} ({result['probes']} probes)")
    print(f"lift to last book stored: {result['drain_seconds']:.1f} s (target {target:.0f} s: {longest} + books/rate)")
    print(f"requests after the lift: {result['requests_after_lift']} (each book once: {args.books})")
    print(f"requests per book, whole run: {per_book_now:.3f}")
    print(f"baseline (fleet pause off, {args.baseline_books} books, RETRY_MAX=4): {per_book_before:.2f} per book")
    print(f"challenged requests per book: {challenged_per_book:.3f} (baseline {per_book_before:.2f})")
    print(f"ratio, challenged requests per book, baseline / now: {per_book_before / challenged_per_book:.0f}x")


if __name__ == "__main__":
    main()
