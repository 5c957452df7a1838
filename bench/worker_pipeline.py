"""The worker pipeline: 500 books through 2 worker processes from a local origin with no
latency and no rate limit, against a naive worker in the same run.

    pipenv run python bench/worker_pipeline.py [--books 500] [--rounds 2]
        [--page ../shared/goodreads-pages/pages/next-4214.html]

The origin serves the given real page (806 KB by default, when ../shared is there) for every
book. Project: the Procfile's worker command (modules preloaded by worker.rq_settings, the
targeted parser) in burst mode. Naive: plain ``rq worker`` running bench/naive_job.py, which
imports everything inside each forked job and parses with a full-tree html.parser soup.
Reports books/s, CPU ms per book (workers and their work horses, from getrusage) and the
peak RSS of one worker process with its children. The two run in alternating rounds and
the medians are compared, so a drift in the machine's speed weighs on both alike.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from redis import Redis
from rq import Queue

from books.queue import BookQueue
from books.settings import Settings
from tests.origin import Origin
from tests.processes import RedisServer, Service, procfile_command, tree_rss_mb

DEFAULT_PAGE = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages" / "next-4214.html"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def drain(command: list[str], env: dict, workers: int, folder: Path) -> tuple[float, float, float]:
    """Run burst-mode workers until the queue is empty: wall seconds, CPU seconds, peak RSS MB."""
    cpu_before, started = children_cpu(), time.perf_counter()
    processes = [
        subprocess.Popen(
            [*command, "--burst"],
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            stdout=open(folder / f"w{n}.log", "ab"),  # noqa: SIM115 (kept open for the child)
            stderr=subprocess.STDOUT,
        )
        for n in range(workers)
    ]
    peak = 0.0
    while any(process.poll() is None for process in processes):
        peak = max(peak, max(tree_rss_mb(process.pid) for process in processes))
        time.sleep(0.05)
    return time.perf_counter() - started, children_cpu() - cpu_before, peak


def figures(name: str, run: tuple[float, float, float, float], books: int) -> str:
    wall, cpu, peak, span = run
    return (
        f"{name:15} {books / wall:6.1f} books/s  {books / span:6.1f} steady  "
        f"{cpu * 1000 / books:6.1f} CPU ms/book  peak RSS of a worker and its children {peak:.0f} MB"
    )


def job_span(redis: Redis, job_ids: list[str]) -> float:
    """Seconds from the first job's start to the last job's end, from RQ's job hashes: the
    pipeline's pace without the workers' start-up."""
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at")
        times = pipe.execute()
    starts = [datetime.fromisoformat(started.decode()) for started, _ in times]
    ends = [datetime.fromisoformat(ended.decode()) for _, ended in times]
    return (max(ends) - min(starts)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--page", type=Path, default=DEFAULT_PAGE if DEFAULT_PAGE.exists() else None)
    args = parser.parse_args()
    page = args.page.read_bytes() if args.page else None
    scratch = tempfile.TemporaryDirectory()
    folder = Path(scratch.name)
    redis_server = RedisServer()
    redis_server.start()
    origin = Origin(page=(lambda _book_id: page) if page else None)
    origin.start()
    redis = Redis(port=redis_server.port)
    env = Service(redis_server.url, origin.url, folder, FETCH_RATE="0").env
    settings = Settings.from_env(env)
    book_ids = [str(200_000 + n) for n in range(args.books)]
    runs: dict[str, list[tuple[float, float, float, float]]] = {"project": [], "naive": []}
    size = f"{len(page) // 1024} KB page" if page else "fixture page"
    print(
        f"{args.books} books, {args.workers} workers, {size}, no latency, no rate limit, "
        f"{args.rounds} alternating rounds"
    )
    print(
        "books/s: from starting the workers to the last one's exit; steady: from the first job's start "
        "to the last job's end"
    )
    try:
        for _round in range(args.rounds):
            redis.flushall()
            BookQueue(redis, settings).enqueue_books(book_ids)
            ours = drain(procfile_command("worker"), env, args.workers, folder)
            assert len(redis.keys("goodreads:book:*")) == args.books, "not every book was stored"
            runs["project"].append((*ours, job_span(redis, [f"book-{book_id}" for book_id in book_ids])))

            queue = Queue(settings.queue_name, connection=redis)
            for book_id in book_ids:
                queue.enqueue("bench.naive_job.parse_book", book_id, job_id=f"naive-{book_id}")
            naive = drain(["rq", "worker", "--url", redis_server.url, settings.queue_name], env, args.workers, folder)
            assert len(redis.keys("naive:book:*")) == args.books, "the naive worker did not store every book"
            runs["naive"].append((*naive, job_span(redis, [f"naive-{book_id}" for book_id in book_ids])))
            for name in runs:
                print("  " + figures(name, runs[name][-1], args.books))
        medians = {
            name: tuple(statistics.median(run[i] for run in results) for i in range(4))
            for name, results in runs.items()
        }
        for name in runs:
            print(figures(f"{name} median", medians[name], args.books))
        ratios = [naive[0] / ours[0] for ours, naive in zip(runs["project"], runs["naive"], strict=True)]
        print(
            f"ratio: {medians['naive'][0] / medians['project'][0]:.1f}x the books/s "
            f"(per round: {', '.join(f'{ratio:.1f}x' for ratio in ratios)}), "
            f"{medians['naive'][3] / medians['project'][3]:.1f}x steady, "
            f"{medians['naive'][1] / medians['project'][1]:.1f}x less CPU per book"
        )
    finally:
        origin.stop()
        redis_server.cleanup()
        scratch.cleanup()


if __name__ == "__main__":
    main()
