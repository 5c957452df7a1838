"""Where a book's record and its last outcome live in Redis, and how they are read back.

Key scheme (``<prefix>`` is ``KEY_PREFIX``, default ``goodreads``):

- ``<prefix>:book:<book_id>``   the record: a zlib-compressed pickle of plain Python values
  (or, written before records were compressed, the bare pickle)
- the book's status hash: its progress, owned by books/progress.py
- ``<prefix>:stored-at``        a sorted set: every book with a record, scored by ``stored_at``
  (the oldest records first, for the refresh rounds and /metrics)

Records are written with pickle, as the product asks, compressed with zlib (some 40 % fewer
bytes in Redis), and read back with an unpickler that refuses every global: plain values need
none, so a crafted pickle cannot make it import or call anything. A stored value is expanded to
at most ``MAX_RECORD_BYTES``: a zip bomb is refused, not expanded. By hand, in a trusted shell:
``pickle.loads(zlib.decompress(value))``.

A record is plain JSON data both ways (``plain_record``): a dict with str keys, lists,
str, int (within 64 bits), finite float, bool and None, at most ``MAX_RECORD_DEPTH``
deep and about ``MAX_RECORD_BYTES`` as JSON. Lone UTF-16 surrogates (half an emoji, as a
page's JSON may hold) become U+FFFD, so every record encodes as valid UTF-8 JSON. The
writer refuses anything else, and the reader refuses it too (``UnsafeRecord``): a record
written before these checks, or by someone else, cannot break an answer or an export.
The size of the JSON is counted as the value is walked, every visit of a shared value
again, so a small pickle that reuses one list a million times is refused after about
``MAX_RECORD_BYTES`` of walking instead of expanding to gigabytes.
"""

from __future__ import annotations

import io
import logging
import math
import pickle
import time
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

from redis import Redis

from books.progress import LUA as PROGRESS_LUA
from books.progress import BookProgress
from books.record import MISSING_VALUES, Record, StoredRecord
from books.settings import Settings

log = logging.getLogger(__name__)

_INT_BOUND = 2**63

# zlib's default level: on real pages' records as small as level 9 and 1.5 % smaller than
# level 1, for some 10 µs more per write (bench/record_size.py).
COMPRESSION_LEVEL = 6
# Every zlib stream with zlib's 32 KB window starts with 0x78; a pickle of protocol 2 or
# more starts with 0x80 (PROTO), as every record written before compression does.
ZLIB_FIRST_BYTE = b"\x78"


class UnsafeRecord(Exception):
    """A record is not plain JSON data within the limits (written or read back)."""


@dataclass(frozen=True)
class RecordLimits:
    """How big and how deep a record may be (``MAX_RECORD_BYTES``, ``MAX_RECORD_DEPTH``)."""

    max_bytes: int = Settings.max_record_bytes
    max_depth: int = Settings.max_record_depth

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordLimits:
        return cls(settings.max_record_bytes, settings.max_record_depth)


class RefusedPickle(pickle.UnpicklingError):
    """A pickle names a global that the service's data never holds."""


class PlainValuesUnpickler(pickle.Unpickler):
    """Unpickles plain values only: every global is refused but the ``allowed`` (module, name)
    pairs, so a crafted pickle cannot make it import or call anything."""

    def __init__(self, data: bytes, allowed: frozenset[tuple[str, str]] = frozenset()) -> None:
        super().__init__(io.BytesIO(data))
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise RefusedPickle(f"refused to load {module}.{name}: plain values only")


def plain_record(value: object, limits: RecordLimits = RecordLimits()) -> StoredRecord:
    """``value`` if it is plain JSON data, else a copy with lone surrogates replaced (only the
    containers on the way to one are copied); ``UnsafeRecord`` (saying why) if it is not a dict
    of plain values within ``limits``."""
    if type(value) is not dict:
        raise UnsafeRecord(f"a record is a dict, not {type(value).__name__}")
    return cast(StoredRecord, _PlainWalk(limits).container(value, 1))


class _PlainWalk:
    """One walk over a value, spending a budget of JSON bytes at every container it visits.

    Each container's own items (keys, commas, scalars) are checked and paid for in one tight
    loop before the walk goes down into the containers among them, so that a shared container
    is paid for again at every visit: a pickle that reuses one list a million times runs out
    of budget after about ``MAX_RECORD_BYTES`` of walking."""

    __slots__ = ("left", "max_depth")

    def __init__(self, limits: RecordLimits) -> None:
        self.left = limits.max_bytes
        self.max_depth = limits.max_depth

    def container(self, value: dict | list, depth: int) -> dict | list:
        """The list or dict checked; itself, or a copy if a string in it had to be replaced.

        Lists and dicts have a loop each, the same checks in both, rather than one loop with a
        branch per item: this runs on every read, and that branch costs nearly a fifth of it."""
        if depth > self.max_depth:
            raise UnsafeRecord(f"nested deeper than {self.max_depth} levels")
        # Every item costs at least 2 bytes, with what it holds: paid up front, so that a huge
        # container is refused before the loop, and settled after it (an inner container
        # pays only its comma here, the rest when it is visited).
        self.spend(2 + 2 * len(value))
        cost = -2 * len(value)
        # Made when first needed, as most containers hold no container and need no repair:
        inner: list[tuple[Any, Any]] | None = None  # (key or index, container) to walk next
        fixed: dict[Any, Any] | None = None  # key or index -> its replaced value
        is_dict = type(value) is dict
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            if is_dict:
                if type(key) is not str:
                    raise UnsafeRecord(f"a {type(key).__name__} key is not plain JSON data")
                cost += len(key) + 4  # quotes, colon, comma
                if not key.isascii() and _clean_text(key) is not key:
                    fixed = fixed or {}
                    fixed.setdefault(key, item)  # the key is replaced as the dict is copied
            else:
                cost += 1  # the comma
            kind = type(item)
            if kind is str:
                cost += len(item) + 2
                if not item.isascii() and _clean_text(item) is not item:
                    fixed = fixed or {}
                    fixed[key] = _clean_text(item)
            elif kind is int:
                if not -_INT_BOUND <= item < _INT_BOUND:
                    raise UnsafeRecord("an integer beyond 64 bits")
                cost += len(repr(item))
            elif kind is float:
                if not math.isfinite(item):
                    raise UnsafeRecord(f"{item} is not a JSON number")
                cost += len(repr(item))
            elif item is None or kind is bool:
                cost += 5
            elif kind is list or kind is dict:
                inner = inner or []
                inner.append((key, item))
            else:
                raise UnsafeRecord(f"a {kind.__name__} is not plain JSON data")
        self.spend(cost)
        for key, item in inner or ():
            checked = self.container(item, depth + 1)
            if checked is not item:
                fixed = fixed or {}
                fixed[key] = checked
        if fixed is None:
            return value
        if type(value) is dict:
            return {_clean_text(key): fixed.get(key, item) for key, item in value.items()}
        return [fixed.get(index, item) for index, item in enumerate(value)]

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise UnsafeRecord("the record is bigger than MAX_RECORD_BYTES as JSON")


def _clean_text(text: str) -> str:
    """``text`` itself if it encodes as UTF-8, else with surrogate pairs joined into the character
    they encode and a lone half replaced by U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")  # only a surrogate cannot be
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def dumps_record(record: Record | StoredRecord, limits: RecordLimits = RecordLimits()) -> bytes:
    """The record as stored: its pickle (plain JSON data only), zlib-compressed; ``UnsafeRecord``
    if it is not plain JSON data, or is too big."""
    data = pickle.dumps(plain_record(record, limits), protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > limits.max_bytes:
        raise UnsafeRecord(f"the record is {len(data)} bytes pickled, over MAX_RECORD_BYTES")
    return zlib.compress(data, COMPRESSION_LEVEL)


def loads_record(data: bytes, limits: RecordLimits = RecordLimits()) -> StoredRecord:
    """Read a record as stored (a zlib-compressed pickle, or a bare pickle written before records
    were compressed), refusing anything that is not plain JSON data within the limits."""
    if len(data) > limits.max_bytes:
        raise UnsafeRecord(f"the stored record is {len(data)} bytes, over MAX_RECORD_BYTES")
    if data[:1] == ZLIB_FIRST_BYTE:
        data = _decompress(data, limits.max_bytes)
    try:
        value = PlainValuesUnpickler(data).load()
    except Exception as error:  # any malformed or hostile pickle lands here
        raise UnsafeRecord(str(error)) from None
    return plain_record(value, limits)


def with_every_field(record: StoredRecord) -> StoredRecord:
    """The record with every field: one written before a field existed answers what a page
    without it gives (None, or an empty list), and Goodreads as its source."""
    for name, value in MISSING_VALUES.items():
        if name not in record:
            record[name] = list(value) if isinstance(value, list) else value
    return record


def _decompress(data: bytes, max_bytes: int) -> bytes:
    """A whole zlib stream's content, expanded to at most ``max_bytes``: a stream that would
    expand further (a zip bomb) is refused before it takes more memory than that."""
    stream = zlib.decompressobj()
    try:
        content = stream.decompress(data, max_bytes + 1)
    except zlib.error as error:
        raise UnsafeRecord(f"a broken zlib stream: {error}") from None
    if len(content) > max_bytes or stream.unconsumed_tail:
        raise UnsafeRecord("the record expands to more than MAX_RECORD_BYTES")
    if not stream.eof or stream.unused_data:
        raise UnsafeRecord("a truncated zlib stream, or bytes after its end")
    return content


# KEYS: the record, the status hash, the stored-at index. ARGV: the record as stored, now, the
# book id, the source. A record without a source in the status hash is Goodreads'.
_SAVE_SECOND_SOURCE = (
    PROGRESS_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 1 and progress.source(KEYS[2]) ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
progress.second_source_stored(KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return 1
"""
)


class BookStore:
    """Records and outcomes of books, on one Redis connection."""

    def __init__(self, redis: Redis, prefix: str = "goodreads", limits: RecordLimits = RecordLimits()) -> None:
        # A client that answers bytes (no decode_responses, as RQ needs too): redis-py's
        # types cannot tell, so the reads below cast its ``bytes | str`` to bytes.
        self.redis = redis
        self.prefix = prefix
        self.limits = limits
        self.progress = BookProgress(redis, prefix)

    def record_key(self, book_id: str) -> str:
        return f"{self.prefix}:book:{book_id}"

    @property
    def stored_at_key(self) -> str:
        return f"{self.prefix}:stored-at"

    def save_record(self, book_id: str, record: Record | StoredRecord, attempt_spent: bool = False) -> None:
        """Write the record and mark the book stored (an attempt spent, if a job's), in one
        transaction; ``UnsafeRecord`` (nothing written) if it is not plain JSON data within the
        limits."""
        data = dumps_record(record, self.limits)
        now = time.time()
        with self.redis.pipeline() as pipe:
            pipe.set(self.record_key(book_id), data)
            self.progress.stored(pipe, book_id, now, attempt_spent)
            pipe.zadd(self.stored_at_key, {book_id: now})
            pipe.execute()

    def save_second_source_record(self, book_id: str, record: Record | StoredRecord, source: str) -> bool:
        """Write a record from the second source ``source``, unless the book has a record from
        elsewhere (Goodreads' is never replaced by it); the book's state is left as it is, so
        it stays due for Goodreads. Returns whether it was written; ``UnsafeRecord`` as
        ``save_record``."""
        data = dumps_record(record, self.limits)
        keys = [self.record_key(book_id), self.progress.key(book_id), self.stored_at_key]
        save = self.redis.register_script(_SAVE_SECOND_SOURCE)
        return bool(save(keys=keys, args=[data, time.time(), book_id, source]))

    def iter_records(self, book_ids: Iterable[str], chunk: int = 500) -> Iterator[StoredRecord]:
        """The stored records of these books, in order, fetched a chunk at a time; books
        without a record are passed over, and so are refused records (each logged)."""
        ids = iter(book_ids)
        while batch := list(islice(ids, chunk)):
            for book_id, data in zip(batch, self.redis.mget([self.record_key(b) for b in batch]), strict=True):
                if data is None:
                    continue
                try:
                    yield with_every_field(loads_record(cast(bytes, data), self.limits))
                except UnsafeRecord as error:
                    log.warning(
                        "left out the refused record of book %s: %s",
                        book_id,
                        error,
                        extra={"fields": {"book_id": book_id}},
                    )

    def stored_book_ids(self, chunk: int = 500) -> Iterator[str]:
        """Every book with a record once, oldest write first, from the stored-at index a chunk
        at a time. A record rewritten while this reads moves to the end of the index: those
        written before the read began are read first; then those written since, each but the
        ones read already (their ids were kept, 8 bytes each: book ids are digits)."""
        began = time.time()
        read = array("q")
        for book_id in self._ids_by_score("-inf", began, chunk):
            read.append(int(book_id))
            yield book_id
        since = {int(book_id): book_id for book_id in self._ids_by_score(f"({began!r}", "+inf", chunk)}
        again = {book_id for book_id in read if book_id in since}
        yield from (book_id for number, book_id in since.items() if number not in again)

    def _ids_by_score(self, low: float | str, high: float | str, chunk: int) -> Iterator[str]:
        """The index's books from score ``low`` to ``high``, a chunk at a time. Read by score,
        not by rank: a record rewritten meanwhile moves to the end, where it would shift the
        ranks under the reader and make it skip another. (Records written in the same
        microsecond share a score and are read by rank among themselves.)"""
        seen_at_low = 0  # members of score ``low`` already read
        while page := cast(
            list[tuple[bytes, float]],
            self.redis.zrangebyscore(self.stored_at_key, low, high, seen_at_low, chunk, withscores=True),
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
        return None if data is None else with_every_field(loads_record(cast(bytes, data), self.limits))
