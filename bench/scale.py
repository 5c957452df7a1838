"""The service at 1k to 1M books: enqueue, Redis bytes per book, batch pages and counts, exports.

    pipenv run python bench/scale.py [--sizes 1000,10000,100000] [--worker-books 2000] [--workers 2]
        [--no-real-pages]

Starts its own redis-server and the Procfile's web process (gunicorn). For each size N:

- enqueue: N links POSTed to /parseGoodreadsLinks, 10,000 a request (no worker runs);
  Redis bytes per queued book (``MEMORY USAGE`` of every key, divided by N);
- a batch of all N links (made with ``Batches.create``, as one POST would with
  MAX_LINKS_PER_REQUEST=N): ``GET /batches/<id>?limit=0`` (its counts, every book read) and
  its first page, while the books are queued;
- the records: N records written with ``BookStore.save_record`` directly (no fetching),
  Redis bytes per stored book; the batch finished: its first answer (the counts read and
  kept) and the next (read back); ``GET /books`` streamed to the end, with the web process's
  peak RSS.

Then ``--worker-books`` books through ``--workers`` real ``rq worker`` processes from the local
origin (FETCH_RATE=0), once with RESULT_TTL=3600 (RQ keeps each finished job and its result
an hour) and once with the default 0: Redis bytes per stored book once the queue has drained,
by kind of key (records, statuses, the stored-at index, the rest), the same again with every
record rewritten as a bare pickle (as stored before records were compressed: the baseline, on
the same keys) and the ratio, and Redis commands per book (``INFO commandstats``, before and
after), the most called first. Then once more with RESULT_TTL=0 on the real pages of
../shared/goodreads-pages/ (when present; ``--no-real-pages`` skips it), the origin serving
them in turn, as real records are bigger than the fixture's. Then whose the commands are: the
same books through RQ's ``SimpleWorker`` in this process (the
same job, RQ's same code for a job's life, without the fork), on a Redis connection that counts
every command it sends and each round trip, and names the owner from the call stack: the
innermost caller outside redis-py is this service's code (books/, worker/) or RQ's. The forking
worker's extra commands (the horse's heartbeats and monitoring) are RQ's too, so RQ's share
through real workers is their total less the service's own. First of all, the records' median
size as stored and as a bare pickle (the real pages' when present, else the fixture's).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import requests
from redis import ConnectionPool, Redis
from redis.connection import Connection

from books.batches import Batches
from books.links import BookId
from books.queue import BookQueue
from books.store import ZLIB_FIRST_BYTE, BookStore, dumps_record
from tests.conftest import BurstWorker
from tests.origin import Origin, book_page
from tests.processes import RedisServer, Service, tree_rss_kb, wait_until
from worker.parser import NotABookPage, parse_book_page

POST_CHUNK = 10_000
LINK = "https://www.goodreads.com/book/show/{}"
PAGES = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages"


def timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def redis_bytes(redis: Redis) -> int:
    """``MEMORY USAGE`` of every key, summed."""
    return sum(redis_bytes_by_kind(redis).values())


KEY_KINDS = (
    ("records", b"goodreads:book:"),
    ("statuses", b"goodreads:status:"),
    ("stored-at index", b"goodreads:stored-at"),
)


def redis_bytes_by_kind(redis: Redis) -> Counter:
    """``MEMORY USAGE`` of every key (every element counted, not sampled), summed by kind:
    records, statuses, the stored-at index and the rest (RQ's keys, counters)."""
    total: Counter = Counter()
    keys: list[bytes] = []
    for key in redis.scan_iter(count=5000):
        keys.append(key)
        if len(keys) == 5000:
            total += _usage(redis, keys)
            keys = []
    return total + _usage(redis, keys)


def _usage(redis: Redis, keys: list[bytes]) -> Counter:
    with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = pipe.execute()
    usage: Counter = Counter()
    for key, size in zip(keys, sizes, strict=True):
        kind = next((name for name, prefix in KEY_KINDS if key.startswith(prefix)), "other")
        usage[kind] += size or 0
    return usage


def store_records_bare(redis: Redis) -> None:
    """Every record rewritten as a bare pickle, as records were stored before they were
    compressed (and are still read): the baseline on the very same keys."""
    for key in redis.scan_iter(match="goodreads:book:*", count=1000):
        data = redis.get(key)
        assert data is not None and data[:1] == ZLIB_FIRST_BYTE
        redis.set(key, zlib.decompress(data))


def a_record(book_id: str) -> dict:
    record = parse_book_page(book_page(book_id), BookId(book_id))
    assert isinstance(record, dict)
    return {**record, "fetched_at": "2026-07-01T00:00:00+00:00"}


def store_records(redis: Redis, book_ids: list[str]) -> None:
    store = BookStore(redis)
    template = a_record("4242")
    for book_id in book_ids:
        store.save_record(book_id, {**template, "book_id": book_id, "url": LINK.format(book_id)})


def web_peak_mb(service: Service) -> float:
    assert service.web is not None
    return sum(tree_rss_kb(service.web.pid, "VmHWM").values()) / 1024


def one_size(server: RedisServer, size: int, folder: Path) -> dict[str, float]:
    redis = Redis(port=server.port)
    redis.flushall()
    # One client posts every book: its bounds against crowding others out are lifted.
    service = Service(
        server.url, "http://127.0.0.1:9", folder, CLIENT_QUEUED_BOOKS="0", CLIENT_BATCH_BYTES="0", MAX_BATCH_BYTES="0"
    )
    service.start_web()
    figures: dict[str, float] = {}
    try:
        first = 1_000_000
        book_ids = [str(first + n) for n in range(size)]
        links = [LINK.format(book_id) for book_id in book_ids]
        session = requests.Session()

        def enqueue() -> None:
            for start in range(0, size, POST_CHUNK):
                answer = session.post(f"{service.url}/parseGoodreadsLinks", json=links[start : start + POST_CHUNK])
                assert answer.status_code == 202, answer.text[:200]

        figures["enqueue_s"], _ = timed(enqueue)
        redis.delete(*redis.scan_iter(match="goodreads:batch:*"))  # the POSTs' own batches
        figures["queued_bytes_per_book"] = redis_bytes(redis) / size
        batches = Batches(redis, "goodreads", 3600)
        entries = [(link, BookId(book_id), None) for link, book_id in zip(links, book_ids, strict=True)]
        figures["batch_create_s"], batch_id = timed(lambda: batches.create(entries))
        url = f"{service.url}/batches/{batch_id}"
        figures["counts_unfinished_s"], answer = timed(lambda: session.get(url, params={"limit": 0}, timeout=120))
        assert answer.json()["counts"]["queued"] == size, answer.text[:300]
        redis.delete(batches.key(str(batch_id), "counts"))  # kept if they were slow: read them again
        figures["first_page_unfinished_s"], answer = timed(lambda: session.get(url, timeout=120))
        assert len(answer.json()["links"]) == min(size, 1000)

        redis.flushall()
        figures["store_direct_s"], _ = timed(lambda: store_records(redis, book_ids))
        figures["stored_bytes_per_book_direct"] = redis_bytes(redis) / size
        batch_id = batches.create(entries)
        url = f"{service.url}/batches/{batch_id}"
        figures["first_page_finished_first_s"], answer = timed(lambda: session.get(url, timeout=120))
        assert answer.json()["finished"] and answer.json()["counts"]["stored"] == size
        figures["first_page_finished_next_s"], _ = timed(lambda: session.get(url, timeout=120))

        def export() -> int:
            lines = 0
            with session.get(f"{service.url}/books", stream=True, timeout=600) as response:
                for chunk in response.iter_content(1 << 16):
                    lines += chunk.count(b"\n")
            return lines

        figures["export_s"], lines = timed(export)
        assert lines == size, (lines, size)
        figures["web_peak_rss_mb"] = web_peak_mb(service)
    finally:
        service.stop()
    return figures


def commandstats(redis: Redis) -> Counter:
    return Counter({name: stats["calls"] for name, stats in redis.info("commandstats").items()})


def through_workers(
    server: RedisServer, books: int, workers: int, result_ttl: str, folder: Path, pages: list[bytes] | None = None
) -> dict[str, object]:
    """Books through real workers from the local origin (serving the fixture page, or ``pages``
    in turn); bytes and commands per book, and the bytes again with bare-pickle records."""
    redis = Redis(port=server.port)
    redis.flushall()
    redis.config_resetstat()
    origin = Origin(page=(lambda book_id: pages[int(book_id) % len(pages)]) if pages else None)
    origin.start()
    service = Service(server.url, origin.url, folder, RESULT_TTL=result_ttl)
    try:
        service.start_web()
        for _ in range(workers):
            service.start_worker()
        time.sleep(1)  # the workers' start-up commands out of the count
        before = commandstats(redis)
        book_ids = [str(2_000_000 + n) for n in range(books)]
        store = BookStore(redis)
        for start in range(0, books, POST_CHUNK):
            requests.post(
                f"{service.url}/parseGoodreadsLinks",
                json=[LINK.format(b) for b in book_ids[start : start + POST_CHUNK]],
                timeout=60,
            )
        wait_until(lambda: redis.zcard(store.stored_at_key) >= books, 600, 0.5, "every book stored")
        wait_until(
            lambda: (
                redis.llen("rq:queue:bookInfoParser") == 0
                and not redis.zcard("rq:wip:bookInfoParser")
                and not redis.zcard("rq:started:bookInfoParser")
            ),
            60,
            0.2,
            "the queue to drain",
        )
        time.sleep(1)
        calls = commandstats(redis) - before
        redis.delete(*redis.scan_iter(match="goodreads:batch:*"))
        by_kind = redis_bytes_by_kind(redis)
    finally:
        service.stop()
        origin.stop()
    store_records_bare(redis)
    bare = redis_bytes(redis) / books
    per_book = sum(by_kind.values()) / books
    return {
        "stored_bytes_per_book": round(per_book),
        "by_kind": {kind: round(size / books) for kind, size in by_kind.most_common()},
        "bare_pickle_bytes_per_book": round(bare),
        "ratio_to_bare": round(per_book / bare, 3),
        "commands_per_book": sum(calls.values()) / books,
        "top": dict(Counter({name: round(count / books, 1) for name, count in calls.most_common(8)})),
    }


ROOT = Path(__file__).resolve().parents[1]
OURS = (str(ROOT / "books") + os.sep, str(ROOT / "worker") + os.sep)
REDIS_PY = str(Path(Connection.__module__.replace(".", os.sep)).parent)


class CountingConnection(Connection):
    """A redis-py connection that counts the commands and round trips it sends, by owner."""

    commands: Counter = Counter()
    trips: Counter = Counter()

    def send_command(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        owner = _owner()
        self.commands[(owner, str(args[0]).upper())] += 1
        self.trips[owner] += 1
        return super().send_command(*args, **kwargs)

    def pack_commands(self, commands):  # type: ignore[no-untyped-def]
        owner = _owner()
        for command in commands:
            self.commands[(owner, str(command[0]).upper())] += 1
        self.trips[owner] += 1
        return super().pack_commands(commands)


def _owner() -> str:
    """``service`` or ``rq``: who called redis-py, by the innermost caller outside it."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(OURS):
            return "service"
        if f"{os.sep}rq{os.sep}" in name:
            return "rq"
        frame = frame.f_back  # type: ignore[assignment]
    return "other"


def commands_by_owner(server: RedisServer, books: int) -> dict[str, object]:
    """Books through RQ's SimpleWorker in this process (reading jobs as the service's workers
    do) from the local origin, every Redis command counted by owner: the service's own (the
    job) and RQ's (the job's life)."""
    from worker import context

    redis = Redis(port=server.port)
    redis.flushall()
    origin = Origin()
    origin.start()
    os.environ.update({"REDIS_URL": server.url, "GOODREADS_BASE_URL": origin.url, "FETCH_RATE": "0"})
    context.use(None)
    try:
        settings = context.settings()
        BookQueue(redis, settings).enqueue_books([BookId(str(3_000_000 + n)) for n in range(books)])
        counted = Redis(connection_pool=ConnectionPool(port=server.port, connection_class=CountingConnection))
        CountingConnection.commands.clear()
        CountingConnection.trips.clear()
        BurstWorker([settings.queue_name], connection=counted).work(burst=True)
        assert redis.zcard(BookStore(redis).stored_at_key) == books
    finally:
        origin.stop()
    figures: dict[str, object] = {}
    for owner in ("service", "rq"):
        calls = Counter({name: n for (who, name), n in CountingConnection.commands.items() if who == owner})
        figures[f"{owner}_commands_per_book"] = round(sum(calls.values()) / books, 2)
        figures[f"{owner}_round_trips_per_book"] = round(CountingConnection.trips[owner] / books, 2)
        figures[f"{owner}_top"] = {name: round(n / books, 2) for name, n in calls.most_common(12)}
    return figures


def real_pages() -> list[bytes]:
    """The real book pages in ../shared/goodreads-pages/ (none when it is absent)."""
    pages = [page.read_bytes() for page in sorted(PAGES.glob("*.html"))] if PAGES.exists() else []
    return [page for page in pages if not isinstance(parse_book_page(page, BookId("1")), NotABookPage)]


def record_sizes() -> dict[str, float]:
    """Records as stored (a zlib-compressed pickle) and as a bare pickle, median bytes, over the
    real pages when present, else the fixture."""
    records = [parse_book_page(page, BookId("1")) for page in real_pages()] or [a_record("4242")]
    bare = [len(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)) for r in records]
    stored = [len(dumps_record(r)) for r in records if isinstance(r, dict)]  # type: ignore[arg-type]
    return {
        "records": len(stored),
        "pickle_median_bytes": statistics.median(bare),
        "stored_median_bytes": statistics.median(stored),
        "ratio": round(statistics.median(stored) / statistics.median(bare), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--worker-books", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--no-real-pages", dest="real_pages", action="store_false", help="skip the workers' run on the real pages"
    )
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        print(json.dumps({"record_size": record_sizes()}))
        for size in (int(size) for size in args.sizes.split(",") if size):
            print(json.dumps({"books": size, **one_size(server, size, folder)}), flush=True)
        if args.worker_books:
            figures = commands_by_owner(server, args.worker_books)
            print(json.dumps({"in_process": args.worker_books, **figures}), flush=True)
            for result_ttl in ("3600", "0"):
                figures = through_workers(server, args.worker_books, args.workers, result_ttl, folder)
                print(
                    json.dumps({"through_workers": args.worker_books, "RESULT_TTL": result_ttl, **figures}), flush=True
                )
            pages = real_pages() if args.real_pages else []
            if pages:
                figures = through_workers(server, args.worker_books, args.workers, "0", folder, pages)
                run = {"through_workers": args.worker_books, "RESULT_TTL": "0", "pages": f"{len(pages)} real"}
                print(json.dumps({**run, **figures}), flush=True)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
