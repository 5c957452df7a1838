"""Batches: the links of one POST, kept so a client can follow them and take the results away.

A batch lives in three keys that expire together after ``BATCH_TTL``:

- ``<prefix>:batch:<batch_id>``        a hash: ``created_at``, ``links`` (how many),
  ``rejected`` (how many were refused), ``books`` (how many distinct); its latest counts
  (``latest``, JSON, with the books that have a record by source under ``sources``), when
  they were counted (``counts_at``, epoch seconds) and how long that took (``counted_in``);
  and once the batch is seen finished, ``counts`` (its final
  counts, JSON) and ``finished_at``
- ``<prefix>:batch:<batch_id>:links``  a list: each link as ``[link, book_id, reason]`` (JSON),
  the link as sent (shortened), its book id, or the reason it was refused; a link that is
  just its book's canonical link as the book id alone (a JSON string: most links cost a few
  bytes, not an echo)
- ``<prefix>:batch:<batch_id>:books``  a list: the batch's distinct book ids, in the order sent

So a page of links is one ``LRANGE`` and the states of its books. Counting reads every book's
state, a chunk at a time (about 7 µs a book: a million take some seconds), so only batches of
at most ``BATCH_INLINE_COUNT_BOOKS`` books are counted on every GET. A larger batch answers
at once with its latest counts and their time: the first come from its POST (which knows
what it did with each book), and when they are older than ``RECOUNT_AFTER`` a job on the
control queue counts again (one at a time per batch), so no answer waits for a count,
whatever the batch's size. Book states are read live from the jobs and records, so a book
shared by two batches is fetched once and counts in both.

A finished batch keeps the counts it finished with: they are read back without reading its
books again. A book of it sent again later (``?refresh=true``, or after it failed) belongs to
the batch of that new POST, which follows it; the finished batch still says how it ended,
while its pages show each link's current status.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from redis import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT
from rq.exceptions import DuplicateJobError

from books.control import enqueue_control
from books.jobs import BATCH_RECOUNT
from books.links import BookId, canonical_url
from books.origin import iso
from books.queue import BookQueue
from books.record import GOODREADS, SOURCES
from books.settings import Settings
from books.status import IN_PROGRESS, BookStatus, Outcome

# A batch's counts: every book status, and the links refused.
COUNTED = (*BookStatus, Outcome.REJECTED)
# What a POST did with a book, as the status it counts under in its batch's first counts (a
# book queued before may be running already: the first recount tells).
STATUS_OF_OUTCOME = {
    Outcome.QUEUED: BookStatus.QUEUED,
    Outcome.ALREADY_QUEUED: BookStatus.QUEUED,
    Outcome.STORED: BookStatus.STORED,
    Outcome.NOT_FOUND: BookStatus.NOT_FOUND,
}
_BATCH_ID = re.compile(r"[0-9a-f]{32}")
# Entries written per command when a batch is made, and books whose states one pipeline reads.
WRITE_CHUNK = 10_000
STATES_CHUNK = 2_000
# A large batch's latest counts are recounted once older than RECOUNT_AFTER seconds, or than
# RECOUNT_SHARE times as long as they took to count, whichever is longer. The command-line
# client polls every 2 s: its progress moves every few polls; and a batch however large,
# however often it is asked about, costs the workers at most a tenth of one worker's time.
RECOUNT_AFTER = 5.0
RECOUNT_SHARE = 10

# Keep a count unless the batch has expired meanwhile (writing would make a header that never
# expires) or newer counts are kept already; final counts are written once.
# KEYS[1] the header; ARGV: "1" if finished, the counts (JSON), counted at, took.
_KEEP_COUNTS = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '1' then
  redis.call('hsetnx', KEYS[1], 'counts', ARGV[2])
  redis.call('hsetnx', KEYS[1], 'finished_at', ARGV[3])
  return 1
end
if tonumber(ARGV[3]) <= tonumber(redis.call('hget', KEYS[1], 'counts_at') or '0') then return 0 end
redis.call('hset', KEYS[1], 'latest', ARGV[2], 'counts_at', ARGV[3], 'counted_in', ARGV[4])
return 1
"""

# One link of a batch: the link as sent (shortened), its book id, or the reason it was refused.
Entry = tuple[str | None, BookId | None, str | None]
# An entry as kept: compact JSON, from one encoder (``json.dumps`` would make one per entry).
_ENTRY_JSON = json.JSONEncoder(separators=(",", ":")).encode


# What Redis spends beyond the bytes of a list element (the listpack entry's header and
# back-length), on its list nodes and the allocator's rounding (a share of the bytes), and on
# a batch's three keys and its header: ``NewBatch.size`` is then at or a little above
# ``MEMORY USAGE`` of the keys, whatever the links (tests/test_client_bounds.py).
ELEMENT_OVERHEAD = 4
NODE_OVERHEAD = 0.1
BATCH_OVERHEAD = 700


@dataclass(frozen=True)
class NewBatch:
    """A POST's links as a batch stores them, made before it is stored so that its size can
    be charged first (``size``, about the bytes Redis will hold for it)."""

    lines: list[str]
    books: list[BookId]
    rejected: int

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> NewBatch:
        """The entries as stored (``_stored_entry``), the distinct books in the order sent."""
        accepted = [book_id for _link, book_id, _reason in entries if book_id]
        return cls(
            [_stored_entry(entry) for entry in entries], list(dict.fromkeys(accepted)), len(entries) - len(accepted)
        )

    @property
    def size(self) -> int:
        """What the batch costs Redis, at or a little above what it will hold (its bytes charged)."""
        elements = len(self.lines) + len(self.books)
        stored = sum(map(len, self.lines)) + sum(map(len, self.books)) + ELEMENT_OVERHEAD * elements
        return math.ceil(stored * (1 + NODE_OVERHEAD)) + BATCH_OVERHEAD


def _stored_entry(entry: Entry) -> str:
    """A link that is just its book's canonical link as the book id alone, a JSON string (read
    back by ``_read_entry`` as that link); any other as ``[link, book_id, reason]``."""
    link, book_id, _reason = entry
    if book_id is not None and link == canonical_url(book_id):
        return _ENTRY_JSON(book_id)
    return _ENTRY_JSON(entry)


def _read_entry(stored: bytes) -> Entry:
    entry = json.loads(stored)
    if isinstance(entry, str):
        return canonical_url(BookId(entry)), BookId(entry), None
    return cast(Entry, tuple(entry))


@dataclass(frozen=True)
class BatchCounts:
    """Counts per status (books once each; rejected links each), when they were counted (epoch
    seconds: every book's state was read at this time or later), how long that took, and the
    books with a record by the record's source (kept with the counts as their ``sources`` key)."""

    counts: dict[str, int]
    counted_at: float
    took: float = 0.0
    sources: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))

    def to_json(self) -> str:
        return json.dumps({**self.counts, "sources": self.sources})

    @classmethod
    def from_json(cls, text: str, counted_at: float, took: float = 0.0) -> BatchCounts:
        """Counts kept by ``to_json``, or by an earlier version without sources."""
        counts = json.loads(text)
        sources = counts.pop("sources", None) or dict.fromkeys(SOURCES, 0)
        return cls(counts, counted_at, took, sources)

    @property
    def finished(self) -> bool:
        """Every book had settled."""
        return not any(self.counts[status] for status in IN_PROGRESS)

    def stale(self, now: float) -> bool:
        return now - self.counted_at > max(RECOUNT_AFTER, RECOUNT_SHARE * self.took)


@dataclass(frozen=True)
class Batch:
    """A batch's header: what is known of it without reading its links."""

    batch_id: str
    created_at: str
    links: int
    rejected: int
    books: int
    final: BatchCounts | None
    latest: BatchCounts | None


def counts_from_outcomes(outcomes: Iterable[Outcome], rejected: int, counted_at: float) -> BatchCounts:
    """A new batch's first counts: what its POST did with each of its books, starting at
    ``counted_at``."""
    counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
    counts[Outcome.REJECTED] = rejected
    for outcome in outcomes:
        counts[STATUS_OF_OUTCOME[outcome]] += 1
    # A book is "stored" at once only for a fresh record of Goodreads' own (books/queue.py).
    sources = dict.fromkeys(SOURCES, 0) | {GOODREADS: counts[BookStatus.STORED]}
    return BatchCounts(counts, counted_at, sources=sources)


class Batches:
    def __init__(self, redis: Redis, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl
        self._keep_counts = redis.register_script(_KEEP_COUNTS)

    def key(self, batch_id: str, part: str = "") -> str:
        return f"{self.prefix}:batch:{batch_id}{':' + part if part else ''}"

    def create(
        self, entries: Sequence[Entry] | NewBatch, first: BatchCounts | None = None, ttl: int | None = None
    ) -> str:
        """Keep a new batch with its ``first`` counts (see ``counts_from_outcomes``). Without
        them, its first GET counts it, however large."""
        batch_id = uuid.uuid4().hex
        new = entries if isinstance(entries, NewBatch) else NewBatch.of(entries)
        self._write(batch_id, datetime.now(UTC).isoformat(timespec="seconds"), new, ttl or self.ttl, first)
        return batch_id

    def _write(self, batch_id: str, created_at: str, new: NewBatch, ttl: int, first: BatchCounts | None = None) -> None:
        lines, books = new.lines, new.books
        keys = [self.key(batch_id), self.key(batch_id, "links"), self.key(batch_id, "books")]
        header: dict[FieldT, EncodableT] = {
            "created_at": created_at,
            "links": len(lines),
            "rejected": new.rejected,
            "books": len(books),
        }
        if first is not None:
            header |= {"latest": first.to_json(), "counts_at": first.counted_at, "counted_in": first.took}
        with self.redis.pipeline() as pipe:  # one transaction: a batch is seen whole or not at all
            pipe.delete(*keys)
            pipe.hset(keys[0], mapping=header)
            for start in range(0, len(lines), WRITE_CHUNK):
                pipe.rpush(keys[1], *lines[start : start + WRITE_CHUNK])
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
        links, rejected = int(header["links"]), int(header["rejected"])
        return Batch(
            batch_id,
            header["created_at"],
            links,
            rejected,
            int(header.get("books", links - rejected)),  # an earlier version's: at most this many
            BatchCounts.from_json(header["counts"], float(header["finished_at"])) if "counts" in header else None,
            BatchCounts.from_json(header["latest"], float(header["counts_at"]), float(header["counted_in"]))
            if "latest" in header
            else None,
        )

    def _upgrade(self, batch_id: str) -> dict[bytes, bytes]:
        """Rewrite a batch kept as one JSON document in this layout, with the time it had left."""
        key = self.key(batch_id)
        with self.redis.pipeline() as pipe:
            pipe.get(key)
            pipe.ttl(key)
            document, ttl = pipe.execute()
        old = json.loads(document)
        entries = [cast(Entry, tuple(entry)) for entry in old["links"]]
        self._write(batch_id, old["created_at"], NewBatch.of(entries), max(ttl, 1))
        return cast(dict[bytes, bytes], self.redis.hgetall(key))

    def entries(self, batch: Batch, start: int, count: int) -> list[Entry]:
        """``count`` links of the batch from position ``start``."""
        if count <= 0:
            return []
        raw = cast(list[bytes], self.redis.lrange(self.key(batch.batch_id, "links"), start, start + count - 1))
        return [_read_entry(entry) for entry in raw]

    def book_ids(self, batch: Batch, chunk: int = STATES_CHUNK) -> Iterator[list[BookId]]:
        """The batch's distinct books in the order sent, a chunk at a time."""
        key = self.key(batch.batch_id, "books")
        start = 0
        while members := cast(list[bytes], self.redis.lrange(key, start, start + chunk - 1)):
            yield [BookId(member.decode()) for member in members]
            start += chunk

    def counts(self, batch: Batch, queue: BookQueue, exact: bool = False) -> BatchCounts:
        """The batch's counts. A finished batch's final counts, kept when first seen; a batch
        of at most ``BATCH_INLINE_COUNT_BOOKS`` books (or any, when ``exact``) counted now;
        a larger one's latest counts, with a recount scheduled when they are stale, so its
        ``finished`` can lag by the recount interval. A batch without any counts yet (made
        by an earlier version, or without its POST's) is counted now, once."""
        if batch.final is not None:
            return batch.final
        if exact or batch.latest is None or batch.books <= queue.settings.batch_inline_count_books:
            return self.recount(batch, queue)
        if batch.latest.stale(time.time()):
            schedule_recount(queue.redis, queue.settings, batch.batch_id)
        return batch.latest

    def recount(self, batch: Batch, queue: BookQueue) -> BatchCounts:
        """Read every book's state and keep the counts: as the batch's final counts once every
        book has settled, else as its latest."""
        counted_at, started = time.time(), time.monotonic()
        counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
        counts[Outcome.REJECTED] = batch.rejected
        sources: dict[str, int] = dict.fromkeys(SOURCES, 0)
        for chunk in self.book_ids(batch):
            for status, source in queue.statuses(chunk):
                counts[status] += 1
                if source is not None:
                    sources[source] = sources.get(source, 0) + 1
        counted = BatchCounts(counts, counted_at, time.monotonic() - started, sources)
        self._keep_counts(
            keys=[self.key(batch.batch_id)],
            args=["1" if counted.finished else "0", counted.to_json(), repr(counted_at), repr(counted.took)],
        )
        return counted


def schedule_recount(redis: Redis, settings: Settings, batch_id: str) -> bool:
    """Ask a worker to recount the batch, unless a recount of it is queued or running already;
    return whether this call asked."""
    try:
        enqueue_control(redis, settings, BATCH_RECOUNT, batch_id, unique=True)
    except DuplicateJobError:
        return False
    return True


def page(batches: Batches, batch: Batch, queue: BookQueue, cursor: int, limit: int) -> dict[str, Any]:
    """A page of the batch's links from ``cursor`` with each book's status, the batch's counts,
    when they were counted and whether it is finished (by those counts: a large batch's can
    lag by the recount interval, see ``Batches.counts``); ``next_cursor`` is where the next
    page starts (None: the end, and with ``limit`` 0, the counts alone, which have no next page)."""
    counted = batches.counts(batch, queue)
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
        "finished": counted.finished,
        "counts": counted.counts,
        "sources": counted.sources,
        "counts_at": iso(counted.counted_at),
        "links": links,
        "next_cursor": str(end) if limit and end < batch.links else None,
    }


def all_book_ids(batches: Batches, batch: Batch) -> Iterator[BookId]:
    """The batch's distinct books in the order sent, read a chunk at a time."""
    for chunk in batches.book_ids(batch):
        yield from chunk
