"""Where a book's record and its last outcome live in Redis, and how they are read back.

Key scheme (``<prefix>`` is ``KEY_PREFIX``, default ``goodreads``):

- ``<prefix>:book:<book_id>``   the record: a pickle of plain Python values
- ``<prefix>:status:<book_id>`` a hash: ``state`` (stored, not_found, retrying, blocked,
  failed), ``reason``, ``attempts``, ``at`` (epoch seconds of the last outcome) and
  ``stored_at`` (epoch seconds the record was last written)
- ``<prefix>:stored-at``        a sorted set: every book with a record, scored by ``stored_at``
  (the oldest records first, for the refresh rounds and /metrics)

Records are written with pickle, as the product asks, and read back with an
unpickler that refuses every global: plain values (dict, list, str, int, float,
bool, None) need none, so a crafted pickle cannot make it import or call anything.
"""

from __future__ import annotations

import io
import pickle
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, cast

from redis import Redis

from books.record import Record, StoredRecord
from books.status import BookStatus


class UnsafeRecord(Exception):
    """The bytes under a record key are not a pickle of plain values."""


class _PlainValuesUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: records hold plain values only")


def dumps_record(record: Record | StoredRecord) -> bytes:
    return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)


def loads_record(data: bytes) -> StoredRecord:
    """Unpickle a record, refusing anything that is not plain data."""
    try:
        value = _PlainValuesUnpickler(io.BytesIO(data)).load()
    except Exception as error:  # any malformed or hostile pickle lands here
        raise UnsafeRecord(str(error)) from None
    if not isinstance(value, dict):
        raise UnsafeRecord(f"a record is a dict, not {type(value).__name__}")
    return value


class BookStore:
    """Records and outcomes of books, on one Redis connection."""

    def __init__(self, redis: Redis, prefix: str = "goodreads") -> None:
        # A client that answers bytes (no decode_responses, as RQ needs too): redis-py's
        # types cannot tell, so the reads below cast its ``bytes | str`` to bytes.
        self.redis = redis
        self.prefix = prefix

    def record_key(self, book_id: str) -> str:
        return f"{self.prefix}:book:{book_id}"

    def status_key(self, book_id: str) -> str:
        return f"{self.prefix}:status:{book_id}"

    @property
    def stored_at_key(self) -> str:
        return f"{self.prefix}:stored-at"

    def save_record(self, book_id: str, record: Record | StoredRecord) -> None:
        """Write the record and mark the book stored, in one transaction."""
        now = time.time()
        with self.redis.pipeline() as pipe:
            pipe.set(self.record_key(book_id), dumps_record(record))
            pipe.hset(
                self.status_key(book_id),
                mapping={"state": BookStatus.STORED, "reason": "", "at": now, "stored_at": now},
            )
            pipe.zadd(self.stored_at_key, {book_id: now})
            pipe.execute()

    def iter_records(self, book_ids: Iterable[str], chunk: int = 500) -> Iterator[StoredRecord]:
        """The stored records of these books, in order, fetched a chunk at a time; books
        without a record, or whose record is not plain data, are passed over."""
        ids = iter(book_ids)
        while keys := [self.record_key(book_id) for book_id in islice(ids, chunk)]:
            for data in self.redis.mget(keys):
                if data is None:
                    continue
                try:
                    yield loads_record(cast(bytes, data))
                except UnsafeRecord:
                    continue

    def stored_book_ids(self, chunk: int = 500) -> Iterator[str]:
        """Every book with a record, oldest write first, from the stored-at index a chunk at a time.
        Read by score, not by rank: a record rewritten meanwhile moves to the end and comes again,
        where it would shift the ranks under the reader and make it skip another. (Records
        written in the same microsecond share a score and are read by rank among themselves.)"""
        low: float | str = "-inf"
        seen_at_low = 0  # members of score ``low`` already read
        while page := cast(
            list[tuple[bytes, float]],
            self.redis.zrangebyscore(self.stored_at_key, low, "+inf", seen_at_low, chunk, withscores=True),
        ):
            yield from (member.decode() for member, _score in page)
            last = page[-1][1]
            at_last = sum(1 for _member, score in page if score == last)
            seen_at_low = at_last + (seen_at_low if last == low else 0)
            low = last

    def scanned_book_ids(self) -> Iterator[str]:
        """Every book with a record, as SCAN finds them over the whole keyspace: for the records
        written before the stored-at index existed."""
        start = len(self.record_key(""))
        for key in self.redis.scan_iter(match=self.record_key("*"), count=1000):
            yield key.decode()[start:]

    def load_record(self, book_id: str) -> StoredRecord | None:
        data = self.redis.get(self.record_key(book_id))
        return None if data is None else loads_record(cast(bytes, data))

    def record_outcome(self, book_id: str, state: BookStatus, reason: str) -> None:
        """Remember how the last attempt at a book ended (a stored record is kept)."""
        self.redis.hset(self.status_key(book_id), mapping={"state": state, "reason": reason, "at": time.time()})

    def count_attempt(self, book_id: str) -> int:
        """Count an attempt at the book; return how many there have been since it was queued."""
        return int(self.redis.hincrby(self.status_key(book_id), "attempts", 1))
