"""A large unfinished batch's GET /batches/<id>: its latest counts, against counting every book.

    pipenv run python bench/batch_counts.py [--books 1000000] [--rounds 5]

Starts its own redis-server and the Procfile's web process (gunicorn); no worker runs, so
every book stays queued. Queues ``--books`` books (``BookQueue.enqueue_books``, 10,000 a
call, as POSTs would), then makes a batch of them with ``Batches.create`` and the counts its
POST would have given (as one POST would with MAX_LINKS_PER_REQUEST=N), and times:

- its first page and ``?limit=0`` (the counts only, as the client polls), ``--rounds`` times
  each, from the very first GET;
- a GET once its counts are stale (it also asks for the recount job), and the recount itself
  (``Batches.recount``, what the worker's job does), in this process.

Baseline, in the same run: the same batch made without its POST's counts, so that its first
GET counts every book there and then (as every GET of an unfinished batch did before).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import requests
from redis import Redis
from rq import Queue

from bench.scale import timed
from books.batches import Batches, counts_from_outcomes
from books.links import BookId
from books.queue import BookQueue
from books.settings import Settings
from books.status import Outcome
from tests.processes import RedisServer, Service

CHUNK = 10_000
LINK = "https://www.goodreads.com/book/show/{}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    service = Service(server.url, "http://127.0.0.1:9", Path(tempfile.mkdtemp(prefix="bench-batch-counts-")))
    try:
        service.start_web()
        print(json.dumps({"books": args.books, **measure(server, service, args.books, args.rounds)}), flush=True)
    finally:
        service.stop()
        server.cleanup()


def timed_get(session: requests.Session, url: str, **params: str) -> tuple[float, dict]:
    took, answer = timed(lambda: session.get(url, params=params, timeout=300))
    assert isinstance(answer, requests.Response) and answer.status_code == 200, answer
    return took, answer.json()


def measure(server: RedisServer, service: Service, size: int, rounds: int) -> dict[str, object]:
    redis = Redis(port=server.port)
    settings = Settings(redis_url=server.url, max_queued_books=0)
    queue = BookQueue(redis, settings)
    book_ids = [BookId(str(1_000_000 + n)) for n in range(size)]
    outcomes: dict[BookId, Outcome] = {}

    def enqueue() -> None:
        for start in range(0, size, CHUNK):
            outcomes.update(queue.enqueue_books(book_ids[start : start + CHUNK]))

    enqueued_at = time.time()
    enqueue_s, _ = timed(enqueue)
    batches = Batches(redis, settings.key_prefix, 3600)
    entries = [(LINK.format(book_id), book_id, None) for book_id in book_ids]
    first = counts_from_outcomes(outcomes.values(), 0, enqueued_at)
    create_s, batch_id = timed(lambda: batches.create(entries, first))
    session = requests.Session()
    url = f"{service.url}/batches/{batch_id}"
    pages, counts_only = [], []
    for _ in range(rounds):
        took, body = timed_get(session, url)
        assert body["counts"]["queued"] == size and len(body["links"]) == 1000, body["counts"]
        pages.append(took)
        took, body = timed_get(session, url, limit="0")
        counts_only.append(took)

    header = batches.key(str(batch_id))
    redis.hset(header, "counts_at", float(redis.hget(header, "counts_at") or 0) - 60)
    stale_s, _ = timed_get(session, url, limit="0")
    assert Queue(settings.control_queue_name, connection=redis).job_ids == [f"batch-counts-{batch_id}"]
    batch = batches.load(str(batch_id))
    assert batch is not None
    recount_s, _ = timed(lambda: batches.recount(batch, queue))

    baseline_id = batches.create(entries)
    baseline_s, body = timed_get(session, f"{service.url}/batches/{baseline_id}", limit="0")
    assert body["counts"]["queued"] == size, body["counts"]
    return {
        "enqueue_s": round(enqueue_s, 1),
        "batch_create_s": round(create_s, 1),
        "first_page_s": [round(took, 4) for took in pages],
        "counts_only_s": [round(took, 4) for took in counts_only],
        "stale_get_s": round(stale_s, 4),
        "recount_s": round(recount_s, 2),
        "baseline_first_get_s": round(baseline_s, 2),
        "baseline_over_slowest_get": round(baseline_s / max(pages + counts_only + [stale_s]), 1),
    }


if __name__ == "__main__":
    main()
