"""Where a work horse's page faults come from: each step of a job, twice, in a fresh fork of a
process that preloaded what the worker preloads.

    pipenv run python bench/horse_faults.py [--forks 21] [--warm 0]
        [--page ../shared/goodreads-pages/pages/next-4214.html]

For each step (fetch from a local origin, parse, a new Redis connection, one log line) it
forks, runs the step twice in the child and prints the median minor page faults of the first
and of the second run. The first run pays for copying every page of the parent's objects the
step touches; the second shows what the step itself costs. ``--warm N`` runs every step N
times in the parent before forking, to show how little settling the bytecode first changes.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.config
import os
import resource
import statistics
from collections.abc import Callable
from pathlib import Path

from tests.origin import Origin
from tests.processes import RedisServer

DEFAULT_PAGE = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages" / "next-4214.html"


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def faults_in_fork(step: Callable[[], object]) -> tuple[int, int]:
    """Minor faults of the step's first and second run in a new child process."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        before = minor_faults()
        step()
        between = minor_faults()
        step()
        os.write(write_end, f"{between - before} {minor_faults() - between}".encode())
        os._exit(0)
    os.waitpid(pid, 0)
    first, second = map(int, os.read(read_end, 100).split())
    os.close(read_end)
    os.close(write_end)
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=21)
    parser.add_argument("--warm", type=int, default=0)
    parser.add_argument("--page", type=Path, default=DEFAULT_PAGE if DEFAULT_PAGE.exists() else None)
    args = parser.parse_args()
    page = args.page.read_bytes() if args.page else None
    redis_server = RedisServer()
    redis_server.start()
    origin = Origin(page=(lambda _book_id: page) if page else None)
    origin.start()
    os.environ.update(REDIS_URL=redis_server.url, GOODREADS_BASE_URL=origin.url, FETCH_RATE="0")
    try:
        import worker.rq_settings  # the worker's preloading, ending in gc.freeze()
        from books.links import BookId
        from worker import context
        from worker.connection import WorkerRedis
        from worker.fetch import fetch_book_page
        from worker.parser import parse_book_page
        from worker.ratelimit import FetchRateLimiter

        settings = context.settings()
        logging.config.dictConfig(worker.rq_settings.DICT_CONFIG)
        for handler in logging.getLogger().handlers:
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the script)
        limiter = FetchRateLimiter(WorkerRedis.from_url(settings.redis_url), "bench:slot", 0)

        def fetch() -> bytes:
            return fetch_book_page(BookId("4214"), settings, context.session(), limiter).body

        body = fetch()
        steps: dict[str, Callable[[], object]] = {
            "fetch": fetch,
            "parse": lambda: parse_book_page(body, "4214"),
            "connect": lambda: WorkerRedis.from_url(settings.redis_url).ping(),
            "log line": lambda: logging.getLogger("worker.tasks").info(
                "book attempt", extra={"fields": {"book_id": "4214", "outcome": "stored"}}
            ),
        }
        for _ in range(args.warm):
            for step in steps.values():
                step()
        gc.freeze()  # as the worker's preloading does, for what was made since
        print(
            f"minor page faults in a fresh work horse, median of {args.forks} forks"
            f"{f', after {args.warm} warm-up runs in the parent' if args.warm else ''}"
        )
        for name, step in steps.items():
            runs = [faults_in_fork(step) for _ in range(args.forks)]
            first = statistics.median(run[0] for run in runs)
            second = statistics.median(run[1] for run in runs)
            print(f"{name:9} first run {first:6.0f}   second run {second:6.0f}")
    finally:
        origin.stop()
        redis_server.cleanup()


if __name__ == "__main__":
    main()
