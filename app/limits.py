"""Per-client limits of the web side, counted in Redis so that every gunicorn worker and
every web host shares them.

A client is the address ``request.remote_addr`` names: the peer's own address, or, behind
``TRUSTED_PROXY_HOPS`` proxies, the address those proxies put in ``X-Forwarded-For``
(``create_app`` wraps the app in werkzeug's ``ProxyFix`` for that many hops; a header the
client forged beyond them is ignored).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from ipaddress import ip_address

from flask import request
from redis import Redis


def client_address() -> str:
    """The address the current request comes from (see the module's docstring)."""
    return request.remote_addr or "unknown"


def is_loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PostBudget:
    """At most ``limit`` requests per client in each window of ``window`` seconds (a fixed
    window that starts with the client's first request); 0 means no limit."""

    redis: Redis
    key_prefix: str
    limit: int
    window: int

    def spend(self, client: str) -> int:
        """Count one request; 0 if it is within the budget, else the seconds until the next window."""
        if not self.limit:
            return 0
        key = f"{self.key_prefix}:budget:post:{client}"
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
            pipe.pttl(key)
            spent, _, left_ms = pipe.execute()
        return 0 if spent <= self.limit else max(1, math.ceil(left_ms / 1000))


@dataclass(frozen=True)
class LoginThrottle:
    """Wrong passwords per client: the first ``free_failures`` cost nothing; after that each
    one locks the client out, for twice as long as the one before, up to ``max_lockout`` seconds.
    While locked out, no password is checked. A right password clears the count."""

    redis: Redis
    key_prefix: str
    free_failures: int
    max_lockout: int

    def _keys(self, client: str) -> tuple[str, str]:
        base = f"{self.key_prefix}:dashboard-login:{client}"
        return f"{base}:failures", f"{base}:locked"

    def wait(self, client: str) -> int:
        """Seconds the client must wait before a password is checked again (0: none)."""
        left_ms = self.redis.pttl(self._keys(client)[1])
        return math.ceil(left_ms / 1000) if left_ms > 0 else 0

    def failed(self, client: str) -> None:
        failures_key, locked_key = self._keys(client)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(failures_key)
            # The count outlives the longest lockout, so waiting one out does not reset it.
            pipe.expire(failures_key, 2 * self.max_lockout)
            failures = pipe.execute()[0]
        beyond = failures - self.free_failures
        if beyond > 0:
            lockout = min(2 ** min(beyond - 1, 30), self.max_lockout)
            self.redis.set(locked_key, 1, ex=lockout)

    def succeeded(self, client: str) -> None:
        self.redis.delete(self._keys(client)[0])
