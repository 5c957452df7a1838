"""The worker pipeline: 500 books through 2 worker processes from a local origin with no
latency and no rate limit, in each of the worker's modes, against a naive worker in the same run.

    pipenv run python bench/worker_pipeline.py [--books 500] [--workers 2] [--rounds 2]
        [--page ../shared/goodreads-pages/pages/next-4214.html] [--no-naive]

The origin serves the given page (the real 806 KB next-4214 by default, when ../shared is
there; the project's fixture page otherwise, or with ``--page tests/fixtures/next_apollo.html``)
for every book. Project: the Procfile's worker command in burst mode, in four modes:

- ``fork, cold``: each book in a forked work horse, without the warm-up (``WORKER_WARM_UP=false``):
  each horse builds the parser's lazily built tables again, as the worker did before;
- ``fork``: the same with the warm-up, the default;
- ``in-process, cold`` and ``in-process``: ``WORKER_FORK=false``, each book in the worker's own
  process, without and with the warm-up.

Naive: plain ``rq worker`` running bench/naive_job.py, which imports everything inside each
forked job and parses with a full-tree html.parser soup.

Reports books/s (start to exit, and steady: from the first book done to the last), CPU ms
per book (the workers and their work horses, from getrusage, start-up included), Redis CPU ms
per book (redis-server's own, from ``INFO cpu``) and the peak RSS of one worker process with
its children. Every round runs every mode once, in an order that turns by one each round, and
each figure is the median over the rounds, so a drift in the machine's speed weighs on all
alike. The comparisons take the steady rate: a plain ``rq worker``'s exit often waits a
minute for its command channel's listener (redis-py 8), which the naive worker's books/s
counts and the project's worker no longer does.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import astuple, dataclass
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job

from books.queue import BookQueue
from books.settings import Settings
from books.store import BookStore
from tests.origin import Origin
from tests.processes import RedisServer, Service, procfile_command, tree_rss_mb

DEFAULT_PAGE = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages" / "next-4214.html"
# The project's modes: their settings.
MODES = {
    "fork, cold": {"WORKER_WARM_UP": "false"},
    "fork": {},
    "in-process, cold": {"WORKER_FORK": "false", "WORKER_WARM_UP": "false"},
    "in-process": {"WORKER_FORK": "false"},
}
NAIVE = "naive"


@dataclass(frozen=True)
class Run:
    """One drain of the queue: seconds from start to exit, books per second between the first
    book done and the last, CPU seconds of the workers and of Redis, the peak RSS of a worker
    with its children."""

    wall: float
    steady: float
    cpu: float
    redis_cpu: float
    peak_mb: float


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(redis: Redis) -> float:
    info = redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def drain(command: list[str], env: dict, workers: int, folder: Path, redis: Redis) -> tuple[float, float, float, float]:
    """Run burst-mode workers until the queue is empty: wall seconds, CPU seconds of the workers
    and of Redis, the peak RSS in MB."""
    cpu_before, redis_before, started = children_cpu(), redis_cpu(redis), time.perf_counter()
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
    return time.perf_counter() - started, children_cpu() - cpu_before, redis_cpu(redis) - redis_before, peak


def steady_rate(done_at: list[float]) -> float:
    """Books per second from the first book done to the last: the pipeline's pace without the
    workers' start-up and exit."""
    return (len(done_at) - 1) / (max(done_at) - min(done_at))


def figures(name: str, run: Run, books: int) -> str:
    return (
        f"{name:24} {books / run.wall:6.1f} books/s  {run.steady:6.1f} steady  "
        f"{run.cpu * 1000 / books:6.1f} CPU ms/book  {run.redis_cpu * 1000 / books:5.2f} Redis CPU ms/book  "
        f"peak RSS {run.peak_mb:.0f} MB"
    )


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(values) for values in zip(*map(astuple, runs), strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--page", type=Path, default=DEFAULT_PAGE if DEFAULT_PAGE.exists() else None)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive worker (its rounds take minutes)")
    args = parser.parse_args()
    page = args.page.read_bytes() if args.page else None
    scratch = tempfile.TemporaryDirectory()
    folder = Path(scratch.name)
    redis_server = RedisServer()
    redis_server.start()
    origin = Origin(page=(lambda _book_id: page) if page else None)
    origin.start()
    redis = Redis(port=redis_server.port)
    base_env = Service(redis_server.url, origin.url, folder, FETCH_RATE="0").env
    settings = Settings.from_env(base_env)
    book_ids = [str(200_000 + n) for n in range(args.books)]
    names = [*MODES, *([] if args.no_naive else [NAIVE])]
    drain_with = (args.workers, folder, redis)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    size = f"{len(page) // 1024} KB page" if page else "fixture page"
    print(
        f"{args.books} books, {args.workers} workers, {size}, no latency, no rate limit, "
        f"{args.rounds} rounds, each running every mode once in an order turning by one"
    )
    print(
        "books/s: from starting the workers to the last one's exit; steady: from the first book done "
        "to the last; CPU: the workers and their horses, start-up included; Redis: redis-server's"
    )

    def run_project(name: str) -> Run:
        BookQueue(redis, settings).enqueue_books(book_ids)
        wall, cpu, cpu_redis, peak = drain(procfile_command("worker"), {**base_env, **MODES[name]}, *drain_with)
        stored = redis.zrange(BookStore(redis).stored_at_key, 0, -1, withscores=True)
        assert len(stored) == args.books, f"{name}: not every book was stored"
        return Run(wall, steady_rate([at for _, at in stored]), cpu, cpu_redis, peak)

    def run_naive() -> Run:
        queue = Queue(settings.queue_name, connection=redis)
        jobs = [queue.enqueue("bench.naive_job.parse_book", book_id, job_id=f"naive-{book_id}") for book_id in book_ids]
        wall, cpu, cpu_redis, peak = drain(
            ["rq", "worker", "--url", redis_server.url, settings.queue_name], base_env, *drain_with
        )
        assert len(redis.keys("naive:book:*")) == args.books, "the naive worker did not store every book"
        ended = [Job.fetch(job.id, connection=redis).ended_at for job in jobs]
        return Run(wall, steady_rate([at.timestamp() for at in ended if at]), cpu, cpu_redis, peak)

    try:
        for number in range(args.rounds):
            order = names[number % len(names) :] + names[: number % len(names)]
            for name in order:
                redis.flushall()
                runs[name].append(run_naive() if name == NAIVE else run_project(name))
                print("  " + figures(name, runs[name][-1], args.books))
        medians = {name: median_run(results) for name, results in runs.items()}
        print(f"medians over {args.rounds} rounds:")
        for name in names:
            print("  " + figures(name, medians[name], args.books))
        for new, old in (("fork", "fork, cold"), ("in-process", "in-process, cold"), ("in-process", "fork")):
            print(comparison(new, old, medians))
        if NAIVE in medians:
            print(comparison("fork", NAIVE, medians))
    finally:
        origin.stop()
        redis_server.cleanup()
        scratch.cleanup()


def comparison(new: str, old: str, medians: dict[str, Run]) -> str:
    ours, theirs = medians[new], medians[old]
    return (
        f"{new} against {old}: {ours.steady / theirs.steady:.2f}x the steady books/s, "
        f"CPU per book {ours.cpu / theirs.cpu:.2f}x ({(ours.cpu - theirs.cpu) / theirs.cpu:+.0%}), "
        f"Redis CPU per book {ours.redis_cpu / theirs.redis_cpu:.2f}x"
    )


if __name__ == "__main__":
    main()
