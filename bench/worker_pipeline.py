"""The worker pipeline: 500 books through 2 worker processes from a local origin with no
latency and no rate limit, against a naive worker in the same run.

    pipenv run python bench/worker_pipeline.py [--books 500] [--page ../shared/goodreads-pages/pages/next-4214.html]

The origin serves the given real page (806 KB by default, when ../shared is there) for every
book. Project: the Procfile's worker command (modules preloaded by worker.rq_settings, the
targeted parser) in burst mode. Naive: plain ``rq worker`` running bench/naive_job.py, which
imports everything inside each forked job and parses with a full-tree html.parser soup.
Reports books/s, CPU ms per book (workers and their work horses, from getrusage) and the
peak RSS of one worker process with its children.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402

from app.config import Settings  # noqa: E402
from app.jobs import BookJobs  # noqa: E402
from tests.origin import Origin  # noqa: E402
from tests.processes import RedisServer, Service, procfile_command, tree_rss_mb  # noqa: E402

DEFAULT_PAGE = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages" / "next-4214.html"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def drain(command: list[str], env: dict, workers: int, folder: Path) -> tuple[float, float, float]:
    """Run burst-mode workers until the queue is empty: wall seconds, CPU seconds, peak RSS MB."""
    cpu_before, started = children_cpu(), time.perf_counter()
    processes = [subprocess.Popen([*command, "--burst"], env=env, cwd=Path(__file__).resolve().parents[1],
                                  stdout=open(folder / f"w{n}.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
                 for n in range(workers)]
    peak = 0.0
    while any(process.poll() is None for process in processes):
        peak = max(peak, max(tree_rss_mb(process.pid) for process in processes))
        time.sleep(0.05)
    return time.perf_counter() - started, children_cpu() - cpu_before, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--page", type=Path, default=DEFAULT_PAGE if DEFAULT_PAGE.exists() else None)
    args = parser.parse_args()
    page = args.page.read_bytes() if args.page else None
    folder = Path(tempfile.mkdtemp())
    redis_server = RedisServer()
    redis_server.start()
    origin = Origin(page=(lambda _book_id: page) if page else None)
    origin.start()
    redis = Redis(port=redis_server.port)
    env = Service(redis_server.url, origin.url, folder, FETCH_RATE="0").env
    try:
        book_ids = [str(200_000 + n) for n in range(args.books)]
        settings = Settings.from_env(env)
        BookJobs(redis, settings).enqueue_books(book_ids)
        ours = drain(procfile_command("worker"), env, args.workers, folder)
        assert len(redis.keys("goodreads:book:*")) == args.books, "not every book was stored"

        queue = Queue(settings.queue_name, connection=redis)
        for book_id in book_ids:
            queue.enqueue("bench.naive_job.parse_book", book_id, job_id=f"naive-{book_id}")
        naive = drain(["rq", "worker", "--url", redis_server.url, settings.queue_name], env, args.workers, folder)
        assert len(redis.keys("naive:book:*")) == args.books, "the naive worker did not store every book"

        size = f"{len(page) // 1024} KB page" if page else "fixture page"
        print(f"{args.books} books, {args.workers} workers, {size}, no latency, no rate limit")
        for name, (wall, cpu, peak) in (("project", ours), ("naive", naive)):
            print(f"{name:8} {args.books / wall:7.1f} books/s  {cpu * 1000 / args.books:6.1f} CPU ms/book  "
                  f"peak RSS of a worker and its children {peak:.0f} MB")
        print(f"ratio: {naive[0] / ours[0]:.1f}x the books/s, {naive[1] / ours[1]:.1f}x less CPU per book")
    finally:
        origin.stop()
        redis_server.cleanup()


if __name__ == "__main__":
    main()
