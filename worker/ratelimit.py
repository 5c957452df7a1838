"""A request rate to the origin shared by every worker process on every host.

Each fetch reserves the next free slot in Redis, one slot every ``1 / rate``
seconds (2 % more, so that a few milliseconds of scheduling jitter cannot put
``rate + 1`` requests into one second at the origin), and sleeps until its slot
comes. Just before it sends, it stamps the time in Redis, and if the request before it was
sent late (its process woke late: a loaded host), it waits the difference, so the spacing
holds between the requests as sent, not only between their slots. Redis's own clock
decides, so hosts with skewed clocks still keep the pace. When the origin asks for a pause
(429 or 503 with ``Retry-After``), every worker's next slot moves past it. A
``Crawl-delay`` in the origin's robots.txt is a floor under the interval. Neither reaches
beyond ``ORIGIN_WAIT_MAX``, and a slot kept further ahead (by an earlier version, which
took a pause of years as asked) is brought back within it when the next slot is taken.

A slot is only taken when it comes within ``FETCH_WAIT_MAX`` seconds: a job sleeps that
long at most, well inside ``JOB_TIMEOUT``, however many workers share the rate. A farther
slot is not taken (``SlotTooFar``, saying when the first free one is): the job is put aside
with RQ's scheduler, and the slot stays free for a job that can use it. So the slots taken
never reach further ahead than ``FETCH_WAIT_MAX``, every slot taken is used, and the rate
is never exceeded. ``room_in`` tells a worker, before it takes another book, how long until
a slot could be taken at all, so that workers in excess of the rate wait instead of taking
book after book only to put each aside.
"""

from __future__ import annotations

import time

from redis import Redis

from books.settings import Settings

# KEYS[1]: the next free slot (µs, Redis clock). ARGV[1]: µs between requests;
# ARGV[2]: µs the caller must wait at least (a pause asked by the origin, or 0);
# ARGV[3]: the most µs the caller will wait (-1: any); ARGV[4]: the most µs ahead a free slot
# may lie (a slot kept further is brought back there, and kept so). Returns {1, µs to wait}
# for a slot taken, {0, µs until the first free slot} for one too far to take.
_RESERVE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_free > now + tonumber(ARGV[4]) then
    next_free = now + tonumber(ARGV[4])
    redis.call('SET', KEYS[1], string.format('%d', next_free), 'PX', math.ceil(tonumber(ARGV[4]) / 1000) + 60000)
end
local slot = math.max(now + tonumber(ARGV[2]), next_free)
local wait_max = tonumber(ARGV[3])
if wait_max >= 0 and slot - now > wait_max then return {0, slot - now} end
local following = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', following),
           'PX', math.ceil((following - now) / 1000) + 60000)
return {1, slot - now}
"""

# KEYS[1]: when the last request was sent (µs, Redis clock). ARGV[1]: µs between requests.
# Returns 0 after stamping now as the last send, or the µs to wait before asking again.
_SEND_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local early = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1]) - now
if early > 0 then return early end
redis.call('SET', KEYS[1], string.format('%d', now), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 60000)
return 0
"""

# KEYS[1]: the next free slot. ARGV[1]: the most µs a caller will wait; ARGV[2]: as the
# reserve script's ARGV[4]. Returns the µs until a slot comes within that wait (0: one can be
# taken now).
_ROOM_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local next_free = math.min(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[2]))
return math.max(0, next_free - now - tonumber(ARGV[1]))
"""


class SlotTooFar(Exception):
    """The first free request slot is further away than this job may wait: none was taken."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the next request slot is {wait:.2f} s away")
        self.wait = wait


class FetchRateLimiter:
    """At most ``rate`` requests per second to the origin, across all workers (0: no limit),
    never closer than ``min_interval`` seconds, no slot taken more than ``wait_max`` seconds
    ahead (None: any), and no pause nor interval longer than ``pause_max`` seconds."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        rate: float,
        min_interval: float = 0.0,
        wait_max: float | None = None,
        pause_max: float = Settings.origin_wait_max,
    ) -> None:
        self.redis = redis
        self.key = key
        self.sent_key = f"{key}:last-sent"
        self.pause_max_us = int(pause_max * 1_000_000)
        rate_interval_us = int(1_000_000 / rate * 1.02) if rate > 0 else 0
        self.interval_us = min(max(rate_interval_us, int(min_interval * 1_000_000)), self.pause_max_us)
        self.wait_max_us = -1 if wait_max is None else int(wait_max * 1_000_000)
        self._reserve = redis.register_script(_RESERVE_SCRIPT)
        self._room = redis.register_script(_ROOM_SCRIPT)
        self._send = redis.register_script(_SEND_SCRIPT)

    @classmethod
    def for_settings(cls, redis: Redis, settings: Settings, min_interval: float = 0.0) -> FetchRateLimiter:
        """The fleet's limiter: ``FETCH_RATE``, no slot beyond ``FETCH_WAIT_MAX``, no pause or
        ``min_interval`` (robots.txt's Crawl-delay) beyond ``ORIGIN_WAIT_MAX``."""
        return cls(
            redis,
            f"{settings.key_prefix}:fetch:next-slot",
            settings.fetch_rate,
            min_interval,
            settings.fetch_wait_max,
            settings.origin_wait_max,
        )

    def wait_for_slot(self) -> float:
        """Block until this process may send its next request; return the seconds waited.
        ``SlotTooFar`` (nothing taken) when the first free slot is beyond ``wait_max``."""
        if not self.interval_us:
            return 0.0
        taken, wait_us = self._reserve(keys=[self.key], args=[self.interval_us, 0, self.wait_max_us, self._ahead_max])
        wait = int(wait_us) / 1_000_000
        if not taken:
            raise SlotTooFar(wait)
        if wait > 0:
            time.sleep(wait)
        while early := int(self._send(keys=[self.sent_key], args=[self.interval_us])) / 1_000_000:
            time.sleep(early)  # the request before woke late: keep the interval from its send
            wait += early
        return wait

    def reserve(self) -> float:
        """Take the next free slot, however far, without waiting for it; return the seconds until
        it comes (for work scheduled to start then)."""
        if not self.interval_us:
            return 0.0
        _taken, wait_us = self._reserve(keys=[self.key], args=[self.interval_us, 0, -1, self._ahead_max])
        return int(wait_us) / 1_000_000

    def room_in(self) -> float:
        """Seconds until a slot comes within ``wait_max`` (0: a request could take one now)."""
        if not self.interval_us or self.wait_max_us < 0:
            return 0.0
        return int(self._room(keys=[self.key], args=[self.wait_max_us, self._ahead_max])) / 1_000_000

    def pause(self, seconds: float) -> None:
        """Hold every worker's requests for ``seconds``, at most ``pause_max`` (the origin asked
        for a pause)."""
        if self.interval_us and seconds > 0:
            pause_us = min(int(seconds * 1_000_000), self.pause_max_us)
            self._reserve(keys=[self.key], args=[0, pause_us, -1, self._ahead_max])

    @property
    def _ahead_max(self) -> int:
        """The furthest ahead (µs) a free slot may lie: the longest pause or the longest wait for
        a slot, whichever is longer (slots taken are never pulled back), then one interval."""
        return max(self.pause_max_us, self.wait_max_us) + self.interval_us
