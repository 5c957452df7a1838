"""Slots: at most so many of something at once, across every process, each held under a
lease that ends when it is given back, or by itself (a process killed holding it).

One sorted set per name, ``<prefix>:<name>``, of the holders' tokens by their lease's end.
"""

from __future__ import annotations

import time

from redis import Redis

# Take a slot if fewer than ARGV[2] leases are live: KEYS[1] the leases (a sorted set by
# their end), ARGV[1] now, ARGV[3] the new lease's end, ARGV[4] its holder's token.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""


class Slots:
    """At most ``limit`` holders at once per name, each for at most ``lease`` seconds."""

    def __init__(self, redis: Redis, prefix: str, limit: int, lease: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.lease = lease
        self._take = redis.register_script(_TAKE)

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def take(self, name: str, token: str) -> bool:
        """Hold one of ``name``'s slots as ``token``; False if all are held."""
        now = time.time()
        return bool(self._take(keys=[self.key(name)], args=[now, self.limit, now + self.lease, token]))

    def give_back(self, name: str, token: str) -> None:
        self.redis.zrem(self.key(name), token)
