"""Bytes per stored record in Redis, over the real pages in ../shared/goodreads-pages/.

    pipenv run python bench/record_size.py

Stores each page's record as the service does (a pickle under goodreads:book:<id>) in a
redis-server of its own and asks Redis for ``MEMORY USAGE`` of the key; in the same run,
the same record as JSON, and the naive choice of keeping the fetched page itself.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from redis import Redis

from books.store import BookStore
from tests.processes import RedisServer
from worker.parser import NotABookPage, parse_book_page

PAGES = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages"


def main() -> None:
    server = RedisServer()
    server.start()
    try:
        redis = Redis(port=server.port)
        store = BookStore(redis)
        sizes: dict[str, list[int]] = {"pickle (the service)": [], "JSON of the record": [], "the raw page": []}
        for page_file in sorted(PAGES.glob("*.html")):
            page = page_file.read_bytes()
            record = parse_book_page(page)
            if isinstance(record, NotABookPage):
                continue
            store.save_record(record["book_id"], record)
            redis.set("json", json.dumps(record))
            redis.set("page", page)
            for name, key in zip(sizes, (store.record_key(record["book_id"]), "json", "page"), strict=True):
                sizes[name].append(redis.memory_usage(key))
        print(f"Redis MEMORY USAGE per record, median over {len(sizes['the raw page'])} real book pages:")
        for name, values in sizes.items():
            print(f"  {name:22} {statistics.median(values):>9,.0f} bytes (min {min(values):,}, max {max(values):,})")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
