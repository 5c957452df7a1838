"""Batches: the links of one POST, kept so a client can follow them and take the results away.

A batch lives in three keys that expire together after ``BATCH_TTL``:

- ``<prefix>:batch:<batch_id>``        a hash: ``created_at``, ``links`` (how many),
  ``rejected`` (how many were refused) and, once the batch is seen finished, ``counts``
  (its final counts, JSON) and ``finished_at``
- ``<prefix>:batch:<batch_id>:links``  a list: each link as ``[link, book_id, reason]`` (JSON),
  the link as sent (shortened), its book id, or the reason it was refused
- ``<prefix>:batch:<batch_id>:books``  a list: the batch's distinct book ids, in the order sent

So a page of links is one ``LRANGE`` and the states of its books, and the counts read the
books a chunk at a time, whatever the batch's size (about 7 µs a book: a million take some
seconds, so such counts are kept a while under ``<prefix>:batch:<batch_id>:counts``, see
``SLOW_COUNTS``). Book states are read live from the jobs
and records, so a book shared by two batches is fetched once and counts in both.

A finished batch keeps the counts it finished with: they are read back without reading its
books again. A book of it sent again later (``?refresh=true``, or after it failed) belongs to
the batch of that new POST, which follows it; the finished batch still says how it ended,
while its pages show each link's current status.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from redis import Redis
from redis.exceptions import ResponseError

from books.links import BookId
from books.queue import BookQueue
from books.status import IN_PROGRESS, BookStatus, Outcome

# A batch's counts: every book status, and the links refused.
COUNTED = (*BookStatus, Outcome.REJECTED)
_BATCH_ID = re.compile(r"[0-9a-f]{32}")
# Entries written per command when a batch is made, and books whose states one pipeline reads.
WRITE_CHUNK = 10_000
STATES_CHUNK = 2_000
# Counts of an unfinished batch that took longer than this (seconds) to read are kept ten
# times as long as they took: a batch of a million books costs a web process at most a tenth
# of its time, however often it is asked about.
SLOW_COUNTS = 0.5
COUNTS_KEPT_FOR = 10

# One link of a batch: the link as sent (shortened), its book id, or the reason it was refused.
Entry = tuple[str | None, BookId | None, str | None]


@dataclass(frozen=True)
class Batch:
    """A batch's header: what is known of it without reading its links."""

    batch_id: str
    created_at: str
    links: int
    rejected: int
    final_counts: dict[str, int] | None


class Batches:
    def __init__(self, redis: Redis, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    def key(self, batch_id: str, part: str = "") -> str:
        return f"{self.prefix}:batch:{batch_id}{':' + part if part else ''}"

    def create(self, entries: Sequence[Entry], ttl: int | None = None) -> str:
        batch_id = uuid.uuid4().hex
        self._write(batch_id, datetime.now(UTC).isoformat(timespec="seconds"), entries, ttl or self.ttl)
        return batch_id

    def _write(self, batch_id: str, created_at: str, entries: Sequence[Entry], ttl: int) -> None:
        accepted = [book_id for _link, book_id, _reason in entries if book_id]
        books = list(dict.fromkeys(accepted))
        keys = [self.key(batch_id), self.key(batch_id, "links"), self.key(batch_id, "books")]
        with self.redis.pipeline() as pipe:  # one transaction: a batch is seen whole or not at all
            pipe.delete(*keys)
            pipe.hset(
                keys[0],
                mapping={"created_at": created_at, "links": len(entries), "rejected": len(entries) - len(accepted)},
            )
            for start in range(0, len(entries), WRITE_CHUNK):
                chunk = entries[start : start + WRITE_CHUNK]
                pipe.rpush(keys[1], *(json.dumps(entry, separators=(",", ":")) for entry in chunk))
            for start in range(0, len(books), WRITE_CHUNK):
                pipe.rpush(keys[2], *books[start : start + WRITE_CHUNK])
            for key in keys:
                pipe.expire(key, ttl)
            pipe.execute()

    def load(self, batch_id: str) -> Batch | None:
        if not _BATCH_ID.fullmatch(batch_id):
            return None
        try:
            raw = cast(dict[bytes, bytes], self.redis.hgetall(self.key(batch_id)))
        except ResponseError:  # a batch made by an earlier version: one JSON document
            raw = self._upgrade(batch_id)
        if not raw:
            return None
        header = {key.decode(): value.decode() for key, value in raw.items()}
        return Batch(
            batch_id,
            header["created_at"],
            int(header["links"]),
            int(header["rejected"]),
            json.loads(header["counts"]) if "counts" in header else None,
        )

    def _upgrade(self, batch_id: str) -> dict[bytes, bytes]:
        """Rewrite a batch kept as one JSON document in this layout, with the time it had left."""
        key = self.key(batch_id)
        with self.redis.pipeline() as pipe:
            pipe.get(key)
            pipe.ttl(key)
            document, ttl = pipe.execute()
        old = json.loads(document)
        self._write(batch_id, old["created_at"], [tuple(entry) for entry in old["links"]], max(ttl, 1))
        return cast(dict[bytes, bytes], self.redis.hgetall(key))

    def entries(self, batch: Batch, start: int, count: int) -> list[Entry]:
        """``count`` links of the batch from position ``start``."""
        if count <= 0:
            return []
        raw = cast(list[bytes], self.redis.lrange(self.key(batch.batch_id, "links"), start, start + count - 1))
        return [cast(Entry, tuple(json.loads(entry))) for entry in raw]

    def book_ids(self, batch: Batch, chunk: int = STATES_CHUNK) -> Iterator[list[BookId]]:
        """The batch's distinct books in the order sent, a chunk at a time."""
        key = self.key(batch.batch_id, "books")
        start = 0
        while members := cast(list[bytes], self.redis.lrange(key, start, start + chunk - 1)):
            yield [BookId(member.decode()) for member in members]
            start += chunk

    def counts(self, batch: Batch, queue: BookQueue) -> tuple[dict[str, int], bool]:
        """Counts per status (books once each; rejected links each) and whether every book has
        settled. A finished batch's counts are kept when first seen, and read back after."""
        if batch.final_counts is not None:
            return batch.final_counts, True
        recent = self.redis.get(self.key(batch.batch_id, "counts"))
        if recent:
            return json.loads(recent), False
        started = time.monotonic()
        counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
        counts[Outcome.REJECTED] = batch.rejected
        for chunk in self.book_ids(batch):
            for status in queue.statuses(chunk):
                counts[status] += 1
        finished = not any(counts[status] for status in IN_PROGRESS)
        took = time.monotonic() - started
        if finished:
            with self.redis.pipeline() as pipe:
                pipe.hsetnx(self.key(batch.batch_id), "counts", json.dumps(counts))
                pipe.hsetnx(self.key(batch.batch_id), "finished_at", time.time())
                pipe.execute()
        elif took > SLOW_COUNTS:
            kept_ms = max(1, int(took * COUNTS_KEPT_FOR * 1000))
            self.redis.set(self.key(batch.batch_id, "counts"), json.dumps(counts), px=kept_ms)
        return counts, finished


def page(batches: Batches, batch: Batch, queue: BookQueue, cursor: int, limit: int) -> dict[str, Any]:
    """A page of the batch's links from ``cursor`` with each book's status, the batch's counts
    and whether it is finished; ``next_cursor`` is where the next page starts (None: the end)."""
    counts, finished = batches.counts(batch, queue)
    entries = batches.entries(batch, cursor, limit)
    states = queue.states(list(dict.fromkeys(book_id for _link, book_id, _reason in entries if book_id)))
    links = []
    for link, book_id, reason in entries:
        if book_id is None:
            links.append({"link": link, "status": Outcome.REJECTED, "reason": reason})
            continue
        state = states[book_id]
        entry = {"link": link, "book_id": book_id, "status": state.status}
        if state.reason and state.status != BookStatus.STORED:
            entry["reason"] = state.reason
        links.append(entry)
    end = cursor + len(entries)
    return {
        "batch_id": batch.batch_id,
        "created_at": batch.created_at,
        "finished": finished,
        "counts": counts,
        "links": links,
        "next_cursor": str(end) if end < batch.links else None,
    }


def all_book_ids(batches: Batches, batch: Batch) -> Iterator[BookId]:
    """The batch's distinct books in the order sent, read a chunk at a time."""
    for chunk in batches.book_ids(batch):
        yield from chunk
