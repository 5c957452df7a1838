"""A book's progress: the one owner of its status hash, ``<prefix>:status:<book_id>``.

Every write to that hash is a named operation of ``BookProgress`` (or, inside a Lua script
that must touch it atomically, one of the functions of ``LUA``, built here from the same
field names), so that no other module spells the key or a field (tests/test_layout.py).

Fields:

- ``state`` (a ``BookStatus``: stored, not_found, retrying, blocked, failed, paused,
  queued), ``reason``, ``at`` (epoch seconds of the last outcome);
- ``attempts``: attempts spent since the book was queued. An attempt is spent when its outcome
  is the book's own (stored, not found, blocked, failed, retried); one put aside for the
  origin or for a request slot spends none, and neither does a job that stops midway;
- ``stored_at`` (epoch seconds Goodreads' record was last written) and ``source`` (where the
  record came from: ``goodreads``, or ``openlibrary``, whose record leaves ``state`` and
  ``stored_at`` alone: the book stays due for Goodreads);
- ``fallback``: what the second source gave (``openlibrary``, or ``none`` without a match);
- ``next_attempt_at``: when a book put aside is tried again;
- the origin-pause protocol's (books/origin.py): ``paused_since`` (when the book first waited
  for a paused origin), ``origin_strike`` (it met an origin-level answer once while the fleet
  ran) and ``own_trouble`` (a probe showed that answer to be the book's own).

Queueing a book again (``LUA``'s ``progress.queued``) starts it afresh: no attempt spent, no
pause, no strike, no fill asked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from redis import Redis
from redis.client import Pipeline
from redis.typing import EncodableT, FieldT

from books.record import GOODREADS
from books.status import BookStatus

STATE = "state"
REASON = "reason"
AT = "at"
ATTEMPTS = "attempts"
STORED_AT = "stored_at"
SOURCE = "source"
FALLBACK = "fallback"
NEXT_ATTEMPT_AT = "next_attempt_at"
PAUSED_SINCE = "paused_since"
ORIGIN_STRIKE = "origin_strike"
OWN_TROUBLE = "own_trouble"

# What a book queued again forgets.
_FORGOTTEN_WHEN_QUEUED = (PAUSED_SINCE, NEXT_ATTEMPT_AT, ORIGIN_STRIKE, OWN_TROUBLE, FALLBACK)
# What a book that waited for the origin forgets once its pause is over.
_PAUSE_FIELDS = (PAUSED_SINCE, NEXT_ATTEMPT_AT)


def _lua_names(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


# The operations that Lua scripts do on a book's status hash (its key is the argument), for a
# script to put before its own body: ``LUA + script``.
LUA = f"""
local progress = {{}}
function progress.last(key)  -- stored_at, state, at, attempts
    return redis.call('HMGET', key, '{STORED_AT}', '{STATE}', '{AT}', '{ATTEMPTS}')
end
function progress.queued(key)
    redis.call('HSET', key, '{ATTEMPTS}', 0)
    redis.call('HDEL', key, {_lua_names(_FORGOTTEN_WHEN_QUEUED)})
end
function progress.state(key) return redis.call('HGET', key, '{STATE}') or '' end
function progress.source(key) return redis.call('HGET', key, '{SOURCE}') or '' end
function progress.second_source_stored(key, source)
    redis.call('HSET', key, '{SOURCE}', source, '{FALLBACK}', source)
end
function progress.pause_over(key) redis.call('HDEL', key, {_lua_names(_PAUSE_FIELDS)}) end
function progress.own_trouble(key) redis.call('HSET', key, '{OWN_TROUBLE}', 1) end
function progress.has_own_trouble(key) return redis.call('HEXISTS', key, '{OWN_TROUBLE}') == 1 end
"""


class BookProgress:
    """The status hashes of books, on one Redis connection (one that answers bytes)."""

    def __init__(self, redis: Redis, prefix: str = "goodreads") -> None:
        self.redis = redis
        self.key_prefix = f"{prefix}:status:"

    def key(self, book_id: str) -> str:
        return self.key_prefix + book_id

    # What a job does, in the order it may happen.

    def started(self, book_id: str) -> int:
        """A job starts on the book; returns the number this attempt has if it is spent."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(self.key(book_id), ATTEMPTS, 0)  # "0 spent" rather than none, while it waits
            pipe.hget(self.key(book_id), ATTEMPTS)
            _, spent = pipe.execute()
        return int(spent) + 1

    def stored(self, pipe: Pipeline, book_id: str, now: float, attempt_spent: bool) -> None:
        """Goodreads' record was written (in the caller's transaction ``pipe``)."""
        pipe.hset(
            self.key(book_id),
            mapping={STATE: BookStatus.STORED, REASON: "", AT: now, STORED_AT: now, SOURCE: GOODREADS},
        )
        if attempt_spent:
            pipe.hincrby(self.key(book_id), ATTEMPTS, 1)

    def ended(
        self,
        book_id: str,
        state: BookStatus,
        reason: str,
        next_attempt_at: float | None = None,
        *,
        attempt_spent: bool = True,
    ) -> None:
        """An attempt ended with the book's own outcome (``retrying`` with when it is tried
        again, or a final one); a stored record is kept. The attempt is spent with it."""
        outcome: dict[FieldT, EncodableT] = {STATE: state, REASON: reason, AT: time.time()}
        if next_attempt_at is not None:
            outcome[NEXT_ATTEMPT_AT] = next_attempt_at
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key(book_id), mapping=outcome)
            if attempt_spent:
                pipe.hincrby(self.key(book_id), ATTEMPTS, 1)
            pipe.execute()

    def deferred(self, book_id: str, reason: str, next_attempt_at: float) -> None:
        """Put aside for a moment after one odd answer about the origin: no attempt spent."""
        self.ended(book_id, BookStatus.RETRYING, reason, next_attempt_at, attempt_spent=False)

    def waiting_for_slot(self, book_id: str, reason: str, next_attempt_at: float) -> None:
        """Put aside until a request slot comes near: queued again, no attempt spent."""
        self.redis.hset(
            self.key(book_id), mapping={STATE: BookStatus.QUEUED, REASON: reason, NEXT_ATTEMPT_AT: next_attempt_at}
        )

    def struck(self, book_id: str) -> bool:
        """The book met an origin-level answer while the fleet runs; True the first time."""
        return bool(self.redis.hsetnx(self.key(book_id), ORIGIN_STRIKE, 1))

    def paused_since(self, book_id: str, now: float) -> float:
        """When the book began waiting for the paused origin (``now`` if it just did)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(self.key(book_id), PAUSED_SINCE, now)
            pipe.hget(self.key(book_id), PAUSED_SINCE)
            _, since = pipe.execute()
        return float(since or now)

    def paused(self, book_id: str, reason: str, wake_at: float) -> None:
        """The book waits for the paused origin until ``wake_at``, no attempt spent."""
        self.redis.hset(self.key(book_id), mapping={STATE: BookStatus.PAUSED, REASON: reason, NEXT_ATTEMPT_AT: wake_at})

    def gave_up_waiting(self, book_id: str, state: BookStatus, reason: str) -> None:
        """The book waited for the origin longer than ORIGIN_PAUSE_MAX: it ends ``state``."""
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key(book_id), mapping={STATE: state, REASON: reason, AT: time.time()})
            pipe.hdel(self.key(book_id), *_PAUSE_FIELDS)
            pipe.execute()

    def no_fallback_match(self, book_id: str) -> None:
        """The second source had no match for the book: it is not asked again until queued."""
        self.redis.hset(self.key(book_id), FALLBACK, "none")

    # Reads.

    def read(self, pipe: Pipeline, book_id: str) -> None:
        """Queue on ``pipe`` the read of the book's state, source and fallback (in that order)."""
        pipe.hmget(self.key(book_id), STATE, SOURCE, FALLBACK)

    def values(self, book_ids: Sequence[str], field: str) -> list[bytes | None]:
        """One field (``STATE``, ``AT``, ``STORED_AT``...) of many books, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for book_id in book_ids:
                pipe.hget(self.key(book_id), field)
            return cast(list[bytes | None], pipe.execute())
