"""Keeping records fresh: which books are due for a new fetch, and how far behind the store is.

Every record's write time is kept in a sorted set (``BookStore.stored_at_key``), so the oldest
records, and how many are older than ``REFRESH_AFTER``, are found in O(log n) without a scan.
A refresh round queues at most ``REFRESH_BATCH`` of them, counting those still waiting on the
refresh queue, so the refresh backlog never grows past it.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import cast

from books.links import BookId
from books.progress import AT, STORED_AT
from books.queue import BookQueue
from books.status import Outcome

# How many candidate pages a round reads past books it must skip (their last refresh failed).
CANDIDATE_PAGES = 10


@dataclass(frozen=True)
class Freshness:
    """How old the store is, for /metrics."""

    oldest_stored_at: float | None  # epoch seconds the oldest record was written; None without records
    stale_records: int  # records older than REFRESH_AFTER
    refresh_queued: int  # refresh jobs waiting


def freshness(queue: BookQueue) -> Freshness:
    """Three O(log n) reads in one round trip."""
    now = time.time()
    with queue.redis.pipeline(transaction=False) as pipe:
        pipe.zrange(queue.store.stored_at_key, 0, 0, withscores=True)
        pipe.zcount(queue.store.stored_at_key, "-inf", f"({now - queue.settings.refresh_after}")
        pipe.llen(queue.refresh_queue.key)
        oldest, stale, queued = pipe.execute()
    return Freshness(oldest[0][1] if oldest else None, stale, queued)


def stale_book_ids(queue: BookQueue, limit: int) -> list[BookId]:
    """Up to ``limit`` books whose record is older than REFRESH_AFTER, oldest first, passing over
    those tried since then without a new record (a failed or refused refresh waits REFRESH_AFTER
    again instead of being tried every round)."""
    stale_before = time.time() - queue.settings.refresh_after
    chosen: list[BookId] = []
    for page in range(CANDIDATE_PAGES):
        members = queue.redis.zrangebyscore(
            queue.store.stored_at_key, "-inf", f"({stale_before}", start=page * limit, num=limit
        )
        candidates = [member.decode() for member in cast(list[bytes], members)]
        if not candidates:
            break
        last_attempts = queue.store.progress.values(candidates, AT)
        chosen += [
            BookId(book_id)
            for book_id, at in zip(candidates, last_attempts, strict=True)
            if at is None or float(at) < stale_before
        ]
        if len(chosen) >= limit:
            break
    return chosen[:limit]


def index_earlier_records(queue: BookQueue, chunk: int = 1000) -> int:
    """Add to the stored-at index the records written before the index existed, once (a
    marker key says it is done); return how many were added. Only the first round of a
    store upgraded from a version without the index pays for this scan."""
    store, redis = queue.store, queue.redis
    marker = f"{store.stored_at_key}:complete"
    if redis.exists(marker):
        return 0
    added = 0
    book_ids = store.scanned_book_ids()
    while batch := list(itertools.islice(book_ids, chunk)):
        written = store.progress.values(batch, STORED_AT)
        entries = {book_id: float(at or 0) for book_id, at in zip(batch, written, strict=True)}
        added += int(redis.zadd(store.stored_at_key, entries, nx=True) or 0)
    redis.set(marker, 1)
    return added


def refresh_round(queue: BookQueue) -> dict[BookId, Outcome]:
    """Queue the stalest books on the refresh queue, topping it up to REFRESH_BATCH."""
    index_earlier_records(queue)
    room = queue.settings.refresh_batch - queue.redis.llen(queue.refresh_queue.key)
    if room <= 0:
        return {}
    return queue.enqueue_books(stale_book_ids(queue, room), low_priority=True)
