"""The origin's health: one state for the whole fleet, kept in Redis.

When Goodreads challenges, refuses every book, asks for a pause or cannot be reached,
fetching one book after another only spends requests (and each book's attempts) on a
problem that is not the book's. So every worker reports such answers here, and once
``ORIGIN_PAUSE_AFTER`` different books have met them in a row, with no answer from
Goodreads about a book between, the fleet pauses (one book's own wall cannot do it):
no worker fetches, the books wait (``paused``, attempts unspent), and one probe request
goes out at ``ORIGIN_PROBE_INTERVALS``. The first answer about a book (its page, or a
404, ...) resumes everyone.

One hash, ``<prefix>:origin``: ``state`` (an ``OriginState``), ``reason``, ``since``,
``next_probe_at``, ``probe_index``, ``probe_until`` (a probe in flight), ``prober`` (the
book that sends the next probe) and ``probes`` (probes sent, ever); the set
``<prefix>:origin:streak`` holds the books that met such answers since the last page.
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

from books.settings import Settings
from books.status import BookStatus


class OriginState(StrEnum):
    """What the origin is doing, as /readyz, /metrics and the log say it."""

    OK = "ok"
    CHALLENGE = "challenge"  # an AWS WAF challenge or CAPTCHA
    REFUSED = "refused"  # 401 / 403 to every book
    RATE_LIMIT = "rate_limit"  # 429, or 503 with Retry-After
    UNREACHABLE = "unreachable"  # DNS, connection refused, no answer; a robots.txt 5xx


PAUSED_STATES = tuple(state for state in OriginState if state != OriginState.OK)

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

# ARGV: book id, seconds a claimed probe may take. Returns {'go'}, {'probe'} or {'wait'}.
_GATE_SCRIPT = (
    _CLOCK
    + """
if state == 'ok' then return {'go'} end
local due = tonumber(redis.call('HGET', KEYS[1], 'next_probe_at') or '0')
local in_flight = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now >= due and now >= in_flight then
    redis.call('HSET', KEYS[1], 'probe_until', string.format('%.6f', now + tonumber(ARGV[2])))
    redis.call('HINCRBY', KEYS[1], 'probes', 1)
    if redis.call('HGET', KEYS[1], 'prober') == ARGV[1] then redis.call('HDEL', KEYS[1], 'prober') end
    return {'probe'}
end
return {'wait'}
"""
)

# KEYS[2]: the streak set. ARGV: state, reason, threshold, JSON intervals, least seconds to the
# next probe (Retry-After), 1 if this answer was a probe's, the book's id. Returns 'probe_failed',
# 'paused_now', 'paused' or 'counted', and 1 when the kind of trouble changed.
_TROUBLE_SCRIPT = (
    _CLOCK
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
redis.call('SADD', KEYS[2], ARGV[7])
if redis.call('SCARD', KEYS[2]) < tonumber(ARGV[3]) then return {'counted', 0} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'since', string.format('%.6f', now),
           'next_probe_at', string.format('%.6f', now + math.max(intervals[1], wait)), 'probe_index', 0)
redis.call('HDEL', KEYS[1], 'probe_until', 'prober')
redis.call('DEL', KEYS[2])
return {'paused_now', 1}
"""
)

# KEYS[3] (optional): the answered book's status hash, whose pause is over. Returns 'resumed'
# when this page ended a pause, 'ok' otherwise.
_SUCCESS_SCRIPT = (
    _CLOCK
    + """
redis.call('DEL', KEYS[2])
if KEYS[3] then redis.call('HDEL', KEYS[3], 'paused_since', 'next_attempt_at') end
if state == 'ok' then return 'ok' end
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

    @property
    def paused(self) -> bool:
        return self.state != OriginState.OK

    def describe(self) -> str:
        """The reason a paused book gives: what the origin did, since when, what happens next."""
        return (
            f"{self.reason} (since {iso(self.since)}); every fetch is paused and one probe request "
            f"is sent at growing intervals; the book's attempts are not spent"
        )


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")


class OriginHealth:
    """The fleet's shared view of an origin, on one Redis connection: Goodreads', or the one
    whose hash is ``key`` (Open Library's, worker/openlibrary.py)."""

    def __init__(self, redis: Redis, settings: Settings, key: str | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.key = key or f"{settings.key_prefix}:origin"
        self.streak_key = f"{self.key}:streak"
        self._gate = redis.register_script(_GATE_SCRIPT)
        self._trouble = redis.register_script(_TROUBLE_SCRIPT)
        self._success = redis.register_script(_SUCCESS_SCRIPT)
        self._park = redis.register_script(_PARK_SCRIPT)

    def snapshot(self) -> OriginSnapshot:
        stored = cast(dict[bytes, bytes], self.redis.hgetall(self.key))
        raw = {key.decode(): value.decode() for key, value in stored.items()}
        return OriginSnapshot(
            state=OriginState(raw.get("state") or OriginState.OK),
            reason=raw.get("reason", ""),
            since=float(raw["since"]) if raw.get("since") else None,
            next_probe_at=float(raw["next_probe_at"]) if raw.get("next_probe_at") else None,
            probes=int(raw.get("probes", 0)),
        )

    def gate(self, book_id: str) -> str:
        """``go`` (the origin is fine), ``probe`` (this book's fetch is the fleet's probe) or
        ``wait`` (paused: do not fetch)."""
        config = self.settings
        probe_seconds = 2 * (config.fetch_connect_timeout + config.fetch_read_timeout) + 5
        return self._gate(keys=[self.key], args=[book_id, probe_seconds])[0].decode()

    def report_trouble(
        self, book_id: str, state: OriginState, reason: str, wait: float, probing: bool
    ) -> tuple[str, bool]:
        """Count an origin-level answer to a book; returns the verdict (``paused_now``, ``paused``,
        ``probe_failed`` or ``counted``) and whether the origin's state changed."""
        verdict, changed = self._trouble(
            keys=[self.key, self.streak_key],
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

    def report_success(self, status_key: str | None = None) -> bool:
        """A real book page came back; True when it ended a pause. The book's own pause, in
        its status hash at ``status_key``, ends in the same round trip."""
        keys = [self.key, self.streak_key, *([status_key] if status_key else [])]
        return self._success(keys=keys) == b"resumed"

    def park(self, book_id: str) -> tuple[float, bool]:
        """When a paused book is tried again: the next probe's time for the one book that will
        send it, one longest interval later for the others (they are released when it works)."""
        wake_at, prober = self._park(keys=[self.key], args=[book_id, self.settings.origin_probe_intervals[-1]])
        return float(wake_at), bool(prober)
