"""Bytes per stored record in Redis, over the real pages in ../shared/goodreads-pages/ and the fixture.

    pipenv run python bench/record_size.py [--rounds 5]

Stores each page's record as the service does (a zlib-compressed pickle under
goodreads:book:<id>) in a redis-server of its own and asks Redis for ``MEMORY USAGE`` of the
key. Baseline, in the same run: the same record as a bare pickle (as records were stored
before they were compressed), as JSON, and the naive choice of keeping the fetched page
itself. Then the compression levels compared: bytes stored and CPU time to compress, per record.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from redis import Redis

from books.links import BookId
from books.store import COMPRESSION_LEVEL, BookStore, dumps_record, plain_record
from tests.origin import book_page
from tests.processes import RedisServer
from worker.parser import NotABookPage, parse_book_page

PAGES = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages"
FETCHED_AT = "2026-07-01T00:00:00+00:00"


def page_records() -> dict[str, tuple[bytes, dict]]:
    """Each real book page (when the folder is there) and the fixture page, with its record."""
    pages = {path.name: path.read_bytes() for path in sorted(PAGES.glob("*.html"))} if PAGES.exists() else {}
    pages["fixture (tests/fixtures/next_apollo.html)"] = book_page("4242")
    records = {}
    for name, page in pages.items():
        record = parse_book_page(page, BookId("4242"))
        if not isinstance(record, NotABookPage):
            records[name] = (page, {**record, "fetched_at": FETCHED_AT})
    return records


def bare_pickle(record: dict) -> bytes:
    """The record as stored before records were compressed."""
    return pickle.dumps(plain_record(record), protocol=pickle.HIGHEST_PROTOCOL)


def cpu_us(action: Callable[[bytes], object], inputs: list[bytes], rounds: int) -> float:
    """Median over ``rounds`` of the CPU microseconds per call of ``action``, 200 calls an input."""
    times = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(200):
            for data in inputs:
                action(data)
        times.append((time.process_time() - started) / (200 * len(inputs)) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        redis = Redis(port=server.port)
        store = BookStore(redis)
        key = store.record_key("4242")
        rows = []
        for name, (page, record) in page_records().items():
            store.save_record("4242", record)
            stored = redis.memory_usage(key)
            redis.set(key, bare_pickle(record))
            row = {
                "page": name,
                "pickle_bytes": len(bare_pickle(record)),
                "stored_bytes": len(dumps_record(record)),
                "redis_bare_pickle": redis.memory_usage(key),
                "redis_stored": stored,
            }
            redis.set("json", json.dumps(record))
            redis.set("page", page)
            row |= {"redis_json": redis.memory_usage("json"), "redis_raw_page": redis.memory_usage("page")}
            rows.append(row)
        print(f"{'page':44} {'pickle':>7} {'zlib':>6}   Redis: {'pickle':>7} {'zlib':>6} {'ratio':>6}")
        for row in rows:
            ratio = row["redis_stored"] / row["redis_bare_pickle"]
            print(
                f"{row['page']:44} {row['pickle_bytes']:7,} {row['stored_bytes']:6,}"
                f"          {row['redis_bare_pickle']:7,} {row['redis_stored']:6,} {ratio:6.2f}"
            )
        real = [row for row in rows if not row["page"].startswith("fixture")] or rows
        print(f"\nRedis MEMORY USAGE per record, median over {len(real)} real book pages:")
        for label, field in (
            ("stored (zlib-compressed pickle)", "redis_stored"),
            ("bare pickle (before)", "redis_bare_pickle"),
            ("JSON of the record", "redis_json"),
            ("the raw page", "redis_raw_page"),
        ):
            values = [row[field] for row in real]
            print(f"  {label:32} {statistics.median(values):>9,.0f} bytes (min {min(values):,}, max {max(values):,})")
        stored = statistics.median(row["redis_stored"] for row in real)
        bare = statistics.median(row["redis_bare_pickle"] for row in real)
        print(f"  stored / bare pickle: {stored / bare:.2f}")

        pickles = [bare_pickle(record) for _page, record in page_records().values()]
        pickles = pickles[:-1] if len(pickles) > 1 else pickles  # the real pages when there are
        print(f"\nzlib levels over the same records (CPU median of {args.rounds} rounds; {COMPRESSION_LEVEL} is used):")
        print(f"  {'level':5} {'median bytes':>12} {'Redis':>6} {'compress':>9} {'decompress':>11}")
        for level in (1, 3, 6, 9):
            packed = [zlib.compress(data, level) for data in pickles]
            usage = []
            for data in packed:
                redis.set(key, data)
                usage.append(redis.memory_usage(key))
            compress = cpu_us(lambda data, level=level: zlib.compress(data, level), pickles, args.rounds)  # type: ignore[misc]
            decompress = cpu_us(lambda data: zlib.decompressobj().decompress(data, 1 << 20), packed, args.rounds)
            print(
                f"  {level:5} {statistics.median(map(len, packed)):12,.0f} {statistics.median(usage):6,.0f}"
                f" {compress:7.1f}µs {decompress:9.1f}µs"
            )
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
