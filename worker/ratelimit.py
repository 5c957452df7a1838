"""A request rate to the origin shared by every worker process on every host.

Each fetch reserves the next free slot in Redis, one slot every ``1 / rate``
seconds (2 % more, so that a few milliseconds of scheduling jitter cannot put
``rate + 1`` requests into one second at the origin), and sleeps until its slot
comes. Redis's own clock decides, so hosts with skewed clocks still keep the pace. When the origin asks for a pause
(429 or 503 with ``Retry-After``), every worker's next slot moves past it. A
``Crawl-delay`` in the origin's robots.txt is a floor under the interval.
"""

from __future__ import annotations

import time

from redis import Redis

# KEYS[1]: the next free slot (µs, Redis clock). ARGV[1]: µs between requests;
# ARGV[2]: µs the caller must wait at least (a pause asked by the origin, or 0).
# Returns how many µs the caller waits for the slot it has taken.
_RESERVE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now + tonumber(ARGV[2]), next_free)
local following = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', following),
           'PX', math.ceil((following - now) / 1000) + 60000)
return slot - now
"""


class FetchRateLimiter:
    """At most ``rate`` requests per second to the origin, across all workers (0: no limit),
    and never closer than ``min_interval`` seconds."""

    def __init__(self, redis: Redis, key: str, rate: float, min_interval: float = 0.0) -> None:
        self.redis = redis
        self.key = key
        self.interval_us = max(int(1_000_000 / rate * 1.02) if rate > 0 else 0, int(min_interval * 1_000_000))
        self._reserve = redis.register_script(_RESERVE_SCRIPT)

    def wait_for_slot(self) -> float:
        """Block until this process may send its next request; return the seconds waited."""
        if not self.interval_us:
            return 0.0
        wait = int(self._reserve(keys=[self.key], args=[self.interval_us, 0])) / 1_000_000
        if wait > 0:
            time.sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """Hold every worker's requests for ``seconds`` (the origin asked for a pause)."""
        if self.interval_us and seconds > 0:
            self._reserve(keys=[self.key], args=[0, int(seconds * 1_000_000)])
