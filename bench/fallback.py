"""Goodreads challenging every book: Open Library fills them. What reaches Open Library, per book.

    pipenv run python bench/fallback.py [--books 200] [--workers 2] [--rate 20]

The real processes (tests/processes.py) against the local Goodreads origin answering every
book with a 202 challenge, and the fake Open Library (tests/openlibrary.py) serving recorded
real answers: one book Open Library knows by its Goodreads id (The Final Empire, 68428: the
search, then its work), the others unknown to it (the search alone). Printed: Open Library
requests per book, the time until every book has been looked up, and the books answered
with Open Library's record.

The baseline, in the same run against the same fake: a naive lookup of each book, as a
client without the service's care would make it: the search, then every edition the work
lists (to find the one with this Goodreads id), the work, and every author.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import requests
from redis import Redis

from books.hints import BookHints, Hints
from books.links import BookId
from tests.openlibrary import FIXTURES, FakeOpenLibrary
from tests.origin import Origin
from tests.processes import RedisServer, Service, wait_until

KNOWN = "68428"
# Books whose import gave an ISBN-13 Open Library knows (the Goodreads ids of the first two
# editions; the third's edition carries none, so its id here is one of the bench's own).
BY_ISBN = {"60141": "9780441787548", "58575826": "9780804139021", "900000000": "9780134610993"}


def book_ids(count: int) -> list[str]:
    """The books Open Library knows, by Goodreads id and by ISBN, and others it does not."""
    return [KNOWN, *BY_ISBN, *(str(900_000_001 + n) for n in range(count - 1 - len(BY_ISBN)))]


def naive_requests(fake: FakeOpenLibrary, book_id: str) -> int:
    """One book looked up naively: the search, every edition of the work, the work, every author;
    by ISBN, the edition (after its redirect), the work and every author."""
    before = len(fake.paths())
    if book_id in BY_ISBN:
        edition = requests.get(f"{fake.url}/isbn/{BY_ISBN[book_id]}.json", timeout=10).json()
        requests.get(f"{fake.url}{edition['works'][0]['key']}.json", timeout=10)
        for author in edition.get("authors", []):
            requests.get(f"{fake.url}{author['key']}.json", timeout=10)
        return len(fake.paths()) - before
    found = requests.get(f"{fake.url}/search.json", params={"q": f"id_goodreads:{book_id}"}, timeout=10).json()
    for doc in found["docs"]:
        for edition in doc.get("edition_key", []):
            requests.get(f"{fake.url}/books/{edition}.json", timeout=10)
        requests.get(f"{fake.url}{doc['key']}.json", timeout=10)
        for author in doc.get("author_key", []):
            requests.get(f"{fake.url}/authors/{author}.json", timeout=10)
    return len(fake.paths()) - before


def run(args: argparse.Namespace, workdir: Path) -> dict:
    redis_server = RedisServer()
    redis_server.start()
    origin, fake = Origin(), FakeOpenLibrary()
    origin.everyone("challenge")
    origin.start()
    fake.start()
    service = Service(
        redis_server.url,
        origin.url,
        workdir,
        FALLBACK_SOURCE="openlibrary",
        OPENLIBRARY_BASE_URL=fake.url,
        OPENLIBRARY_RATE=str(args.rate),
        CONTACT_EMAIL="bench@example.org",
        ORIGIN_PAUSE_AFTER="3",
        ORIGIN_PROBE_INTERVALS="300",
    )
    try:
        service.start_web()
        service.start_workers(args.workers)
        distinct = book_ids(args.books)
        redis = Redis.from_url(redis_server.url)
        Hints(redis, "goodreads", 3600).save({BookId(b): BookHints(isbn13=isbn) for b, isbn in BY_ISBN.items()})
        started = time.monotonic()
        links = [f"https://www.goodreads.com/book/show/{book_id}" for book_id in distinct]
        requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=60)

        def looked_up() -> bool:
            with redis.pipeline(transaction=False) as pipe:
                for book_id in distinct:
                    pipe.hget(f"goodreads:status:{book_id}", "fallback")
                return all(pipe.execute())

        wait_until(looked_up, 600, 0.5, "every book looked up in Open Library")
        took = time.monotonic() - started
        service_requests = len(fake.paths())
        filled = sum(
            requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10).json().get("source")
            == "openlibrary"
            for link in links
        )
        naive = sum(naive_requests(fake, book_id) for book_id in distinct)
        return {
            "books": len(distinct),
            "requests": service_requests,
            "seconds": took,
            "filled": filled,
            "naive": naive,
        }
    finally:
        service.stop()
        fake.stop()
        origin.stop()
        redis_server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20)
    args = parser.parse_args()
    assert json.loads((FIXTURES / f"search_id_goodreads_{KNOWN}.json").read_text())["docs"]
    with tempfile.TemporaryDirectory() as workdir:
        result = run(args, Path(workdir))
    books = result["books"]
    print(f"{books} books, Goodreads challenging every one, {args.workers} workers, OPENLIBRARY_RATE={args.rate:g}")
    print(f"books answered with Open Library's record: {result['filled']} (1 by Goodreads id, {len(BY_ISBN)} by ISBN)")
    print(f"every book looked up within {result['seconds']:.1f} s of the POST")
    print(f"Open Library requests per book: {result['requests'] / books:.2f} ({result['requests']} in all)")
    print(f"naive lookup (search, every edition, work, every author): {result['naive'] / books:.2f} per book")
    print(f"ratio, naive / service: {result['naive'] / result['requests']:.1f}x")


if __name__ == "__main__":
    main()
