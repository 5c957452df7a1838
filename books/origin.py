"""The origin's health: one state for the whole fleet, kept in Redis.

When Goodreads challenges, refuses every book, asks for a pause or cannot be reached,
fetching one book after another only spends requests (and each book's attempts) on a
problem that is not the book's. So every worker reports such answers here, and once
``ORIGIN_PAUSE_AFTER`` different books have met them in a row, with no answer from
Goodreads about a book between, the fleet pauses (one book's own wall cannot do it):
no worker fetches, the books wait (``paused``, attempts unspent), and one probe request
goes out at ``ORIGIN_PROBE_INTERVALS``. The first answer about a book (its page, or a
404, ...) resumes everyone.

Anyone can send any book id, so the books that paused the fleet are suspects, and the probe
asks for a book the origin served before (the last ``PROBE_SAMPLE``, in turn), never one of
theirs. With such a book at hand the first probe goes out at once: if Goodreads answers it,
the suspects' trouble was their own (``own_trouble`` in their status hash); theirs counts
toward no pause again, and they end ``blocked`` or ``failed`` with their own retries.

One hash, ``<prefix>:origin``: ``state`` (an ``OriginState``), ``reason``, ``since``,
``next_probe_at``, ``probe_index`` (-1 while the first probe is that check), ``probe_until`` (a probe in
flight), ``prober`` (the book whose job sends the next probe) and ``probes`` (probes sent,
ever); the set ``<prefix>:origin:streak`` holds the books that met such answers since the
last page, ``<prefix>:origin:suspects`` those of the streak that paused the fleet, and the
list ``<prefix>:origin:served`` the books last served, newest first.
Redis's clock decides, as for the request rate, and every change is one Lua script, so
any number of workers on any number of hosts agree.
The web side reads it for ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import cast

from redis import Redis

from books.progress import LUA as PROGRESS_LUA
from books.progress import BookProgress
from books.settings import Settings
from books.status import BookStatus


class OriginState(StrEnum):
    """What the origin is doing, as /readyz, /metrics and the log say it."""

    OK = "ok"
    CHALLENGE = "challenge"  # an AWS WAF challenge or CAPTCHA
    REFUSED = "refused"  # 401 / 403 to every book
    RATE_LIMIT = "rate_limit"  # 429, or 503 with Retry-After
    UNREACHABLE = "unreachable"  # DNS, connection refused, no answer; a robots.txt 5xx


# How many of the books the origin served last a probe asks for, in turn.
PROBE_SAMPLE = 16

# How a book ends when the origin stays paused longer than ORIGIN_PAUSE_MAX.
FINAL_STATUS = {
    OriginState.CHALLENGE: BookStatus.BLOCKED,
    OriginState.REFUSED: BookStatus.BLOCKED,
    OriginState.RATE_LIMIT: BookStatus.BLOCKED,
    OriginState.UNREACHABLE: BookStatus.FAILED,
}

_CLOCK = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HGET', KEYS[1], 'state') or 'ok'
"""

# KEYS[2]: the books served. ARGV: book id, seconds a claimed probe may take, 1 if this call may
# claim the probe. Returns {'go', ''}, {'probe', the book to probe with ('' for its own)} or
# {'wait', ''}; the probe's book is the next of the books served, in turn.
_GATE_SCRIPT = (
    _CLOCK
    + """
if state == 'ok' then return {'go', ''} end
if ARGV[3] ~= '1' then return {'wait', ''} end
local due = tonumber(redis.call('HGET', KEYS[1], 'next_probe_at') or '0')
local in_flight = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now >= due and now >= in_flight then
    redis.call('HSET', KEYS[1], 'probe_until', string.format('%.6f', now + tonumber(ARGV[2])))
    redis.call('HINCRBY', KEYS[1], 'probes', 1)
    if redis.call('HGET', KEYS[1], 'prober') == ARGV[1] then redis.call('HDEL', KEYS[1], 'prober') end
    return {'probe', redis.call('RPOPLPUSH', KEYS[2], KEYS[2]) or ''}
end
return {'wait', ''}
"""
)

# KEYS[2]: the streak set, KEYS[3]: the suspects set, KEYS[4]: the books served, KEYS[5]: the
# book's status hash. ARGV: state, reason, threshold, JSON intervals, least seconds to the next
# probe (Retry-After), 1 if this answer was a probe's, the book's id. Returns 'probe_failed',
# 'paused_now', 'paused', 'own' (the book's trouble was shown to be its own) or 'counted', and
# 1 when the kind of trouble changed. The books of the streak that pauses the fleet become its
# suspects; with books served to probe with, the first probe goes out at once (probe_index -1).
_TROUBLE_SCRIPT = (
    PROGRESS_LUA
    + _CLOCK
    + """
local intervals = cjson.decode(ARGV[4])
local wait = tonumber(ARGV[5])
if ARGV[6] == '1' and state ~= 'ok' then
    local index = redis.call('HINCRBY', KEYS[1], 'probe_index', 1)
    local interval = intervals[math.min(index + 1, #intervals)]
    redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2],
               'next_probe_at', string.format('%.6f', now + math.max(interval, wait)))
    redis.call('HDEL', KEYS[1], 'probe_until')
    return {'probe_failed', state ~= ARGV[1] and 1 or 0}
end
if state ~= 'ok' then return {'paused', 0} end
if progress.has_own_trouble(KEYS[5]) then return {'own', 0} end
redis.call('SADD', KEYS[2], ARGV[7])
if redis.call('SCARD', KEYS[2]) < tonumber(ARGV[3]) then return {'counted', 0} end
local check = redis.call('EXISTS', KEYS[4]) == 1
local first_probe = check and wait or math.max(intervals[1], wait)
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'since', string.format('%.6f', now),
           'next_probe_at', string.format('%.6f', now + first_probe), 'probe_index', check and -1 or 0)
redis.call('HDEL', KEYS[1], 'probe_until', 'prober')
redis.call('RENAME', KEYS[2], KEYS[3])
return {'paused_now', 1}
"""
)

# KEYS[2]: the streak set, KEYS[3]: the suspects set, KEYS[4] (optional): the answered book's
# status hash, whose pause is over. ARGV[1]: the prefix of a book's status hash. Returns
# 'resumed' when this answer ended a pause, 'ok' otherwise. An answer before any probe failed
# shows the suspects' trouble to be their own: each is marked so (books/progress.py).
_SUCCESS_SCRIPT = (
    PROGRESS_LUA
    + _CLOCK
    + """
redis.call('DEL', KEYS[2])
if KEYS[4] then progress.pause_over(KEYS[4]) end
if state == 'ok' then return 'ok' end
if tonumber(redis.call('HGET', KEYS[1], 'probe_index') or '0') < 0 then
    for _, book_id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
        progress.own_trouble(ARGV[1] .. book_id)
    end
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'state', 'ok', 'reason', '', 'since', string.format('%.6f', now))
redis.call('HDEL', KEYS[1], 'next_probe_at', 'probe_index', 'probe_until', 'prober')
return 'resumed'
"""
)

# ARGV: book id, seconds a parked book sleeps past the next probe. Returns {epoch seconds to
# wake at, 1 if this book sends the next probe}; {now, 0} if the origin is fine again.
_PARK_SCRIPT = (
    _CLOCK
    + """
if state == 'ok' then return {string.format('%.6f', now), 0} end
local due = tonumber(redis.call('HGET', KEYS[1], 'next_probe_at') or '0')
local prober = redis.call('HGET', KEYS[1], 'prober')
if not prober or prober == ARGV[1] then
    redis.call('HSET', KEYS[1], 'prober', ARGV[1])
    return {string.format('%.6f', due), 1}
end
return {string.format('%.6f', due + tonumber(ARGV[2])), 0}
"""
)


@dataclass(frozen=True)
class OriginSnapshot:
    """The origin's shared state as last recorded."""

    state: OriginState
    reason: str
    since: float | None
    next_probe_at: float | None
    probes: int

    @classmethod
    def from_hash(cls, stored: dict[bytes, bytes]) -> OriginSnapshot:
        """The snapshot of the origin's hash as read from Redis."""
        raw = {key.decode(): value.decode() for key, value in stored.items()}
        return cls(
            state=OriginState(raw.get("state") or OriginState.OK),
            reason=raw.get("reason", ""),
            since=float(raw["since"]) if raw.get("since") else None,
            next_probe_at=float(raw["next_probe_at"]) if raw.get("next_probe_at") else None,
            probes=int(raw.get("probes", 0)),
        )

    @property
    def paused(self) -> bool:
        return self.state != OriginState.OK

    def describe(self) -> str:
        """The reason a paused book gives: what the origin did, since when, what happens next."""
        return (
            f"{self.reason} (since {iso(self.since)}); every fetch is paused and one probe request "
            f"is sent at growing intervals; the book's attempts are not spent"
        )


def origin_key(settings: Settings) -> str:
    """The origin's hash."""
    return f"{settings.key_prefix}:origin"


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")


class OriginHealth:
    """The fleet's shared view of an origin, on one Redis connection: Goodreads', or the one
    whose hash is ``key`` (Open Library's, worker/openlibrary.py)."""

    def __init__(self, redis: Redis, settings: Settings, key: str | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.key = key or origin_key(settings)
        self.streak_key = f"{self.key}:streak"
        self.suspects_key = f"{self.key}:suspects"
        self.served_key = f"{self.key}:served"
        self.progress = BookProgress(redis, settings.key_prefix)
        self._gate = redis.register_script(_GATE_SCRIPT)
        self._trouble = redis.register_script(_TROUBLE_SCRIPT)
        self._success = redis.register_script(_SUCCESS_SCRIPT)
        self._park = redis.register_script(_PARK_SCRIPT)

    def snapshot(self) -> OriginSnapshot:
        return OriginSnapshot.from_hash(cast(dict[bytes, bytes], self.redis.hgetall(self.key)))

    def gate(self, book_id: str, may_probe: bool = True) -> tuple[str, str | None]:
        """``go`` (the origin is fine), ``probe`` (this job sends the fleet's probe; unless
        ``may_probe`` is False) or ``wait`` (paused: do not fetch); with ``probe``, the book to
        probe with: one the origin served before, in turn, or None (none yet: this book's own)."""
        config = self.settings
        probe_seconds = 2 * (config.fetch_connect_timeout + config.fetch_read_timeout) + 5
        verdict, sample = self._gate(keys=[self.key, self.served_key], args=[book_id, probe_seconds, int(may_probe)])
        return verdict.decode(), sample.decode() or None

    def remember_served(self, book_id: str) -> None:
        """The origin served this book's page: one of the last ``PROBE_SAMPLE`` books a probe
        asks for, so that the books meeting the trouble are never the ones that tell."""
        with self.redis.pipeline() as pipe:
            pipe.lrem(self.served_key, 0, book_id)
            pipe.lpush(self.served_key, book_id)
            pipe.ltrim(self.served_key, 0, PROBE_SAMPLE - 1)
            pipe.execute()

    def report_trouble(
        self, book_id: str, state: OriginState, reason: str, wait: float, probing: bool
    ) -> tuple[str, bool]:
        """Count an origin-level answer to a book; returns the verdict (``paused_now``, ``paused``,
        ``probe_failed``, ``own`` or ``counted``) and whether the origin's state changed."""
        verdict, changed = self._trouble(
            keys=[self.key, self.streak_key, self.suspects_key, self.served_key, self.progress.key(book_id)],
            args=[
                state,
                reason,
                self.settings.origin_pause_after,
                json.dumps(self.settings.origin_probe_intervals),
                wait,
                int(probing),
                book_id,
            ],
        )
        return verdict.decode(), bool(changed)

    def report_success(self, book_id: str | None = None) -> bool:
        """A real book page came back (about ``book_id``, if a job's own); True when it ended a
        pause. The book's own pause ends in the same round trip."""
        keys = [self.key, self.streak_key, self.suspects_key, *([self.progress.key(book_id)] if book_id else [])]
        return self._success(keys=keys, args=[self.progress.key_prefix]) == b"resumed"

    def park(self, book_id: str) -> tuple[float, bool]:
        """When a paused book is tried again: the next probe's time for the one book that will
        send it, one longest interval later for the others (they are released when it works)."""
        wake_at, prober = self._park(keys=[self.key], args=[book_id, self.settings.origin_probe_intervals[-1]])
        return float(wake_at), bool(prober)
