"""Per-client limits of the web side, counted in Redis so that every gunicorn worker and
every web host shares them.

A client is the address ``request.remote_addr`` names: the peer's own address, or, behind
``TRUSTED_PROXY_HOPS`` proxies, the address those proxies put in ``X-Forwarded-For``
(``create_app`` wraps the app in ``TrustedProxies``: werkzeug's ``ProxyFix`` for that many
hops, applied only to a request whose peer, and each proxy hop before it, is one of
``TRUSTED_PROXY_ADDRESSES``; a header the client forged beyond them is ignored, and so is
every forwarded header of a client that reaches gunicorn directly).
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from flask import request
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix

from app.errors import ApiError
from books.slots import Slots

Network = IPv4Network | IPv6Network


def client_address() -> str:
    """The address the current request comes from (see the module's docstring)."""
    return request.remote_addr or "unknown"


def is_loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False


def from_trusted_proxies(peer: str, forwarded_for: str, networks: Iterable[Network], hops: int) -> bool:
    """Whether the request came through ``hops`` trusted proxies: its peer and the ``hops - 1``
    last addresses of ``X-Forwarded-For`` (the proxies before the peer) are each in ``networks``."""
    networks = tuple(networks)
    forwarded = [part.strip() for part in forwarded_for.split(",")] if forwarded_for else []
    proxies = [peer, *reversed(forwarded[len(forwarded) - hops + 1 :])] if hops > 1 else [peer]
    if len(proxies) < hops:
        return False
    return all(_in_networks(address, networks) for address in proxies)


def _in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


class TrustedProxies:
    """WSGI middleware: werkzeug's ``ProxyFix`` for ``hops`` proxies, for requests that came
    through proxies in ``networks`` only; any other request keeps its peer's own address."""

    def __init__(self, app: Any, networks: tuple[Network, ...], hops: int) -> None:
        self.app = app
        self.proxied = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops)
        self.networks = networks
        self.hops = hops

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer, forwarded_for = environ.get("REMOTE_ADDR", ""), environ.get("HTTP_X_FORWARDED_FOR", "")
        if from_trusted_proxies(peer, forwarded_for, self.networks, self.hops):
            return self.proxied(environ, start_response)
        return self.app(environ, start_response)


class Gate:
    """At most ``limit`` of something at once in this process (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inside = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        """Count one more inside; False (nothing counted) when ``limit`` are inside already."""
        with self._lock:
            if self.limit and self.inside >= self.limit:
                return False
            self.inside += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.inside -= 1


# The longest a client's turn at parsing a large body lasts, should its process die holding it.
LARGE_POST_LEASE = 60


@dataclass(frozen=True)
class LargePostTurns:
    """One large POST body (over ``threshold`` bytes, or of unknown length) parsed at a time
    per client, across every web process: parsing megabytes of JSON takes a process's CPU, and
    one client's many at once would starve everyone's lookups."""

    redis: Redis
    key_prefix: str
    threshold: int

    @contextmanager
    def turn(self, client: str, length: int | None) -> Iterator[None]:
        """Go on while the body is small, or while the client's turn is held; 429 while another
        large POST of the client is being parsed."""
        if length is not None and length <= self.threshold:
            yield
            return
        slots, token = Slots(self.redis, f"{self.key_prefix}:large-post", 1, LARGE_POST_LEASE), uuid.uuid4().hex
        if not slots.take(client, token):
            raise ApiError(
                429,
                "large_post_in_progress",
                f"a POST body over {self.threshold} bytes (LARGE_POST_BYTES) from this client is being parsed; "
                "send the next when it is answered",
                {"Retry-After": "1"},
            )
        try:
            yield
        finally:
            slots.give_back(client, token)


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


# Seconds of the window DASHBOARD_GLOBAL_FAILURES counts in.
GLOBAL_LOGIN_WINDOW = 60


@dataclass(frozen=True)
class LoginThrottle:
    """Wrong passwords per client: the first ``free_failures`` cost nothing; after that each
    one locks the client out, for twice as long as the one before, up to ``max_lockout`` seconds.
    And from all clients together: past ``global_failures`` in a minute, everyone waits for the
    minute's end, so guessing from many addresses is bounded too. While locked out, no password
    is checked (the dashboard lets browsers known from an earlier login through). A right
    password clears the client's count."""

    redis: Redis
    key_prefix: str
    free_failures: int
    max_lockout: int
    global_failures: int = 0

    def _keys(self, client: str) -> tuple[str, str]:
        base = f"{self.key_prefix}:dashboard-login:{client}"
        return f"{base}:failures", f"{base}:locked"

    @property
    def _global_key(self) -> str:
        return f"{self.key_prefix}:dashboard-login-failures"

    def wait(self, client: str) -> int:
        """Seconds the client must wait before a password is checked again (0: none)."""
        return _seconds(self.redis.pttl(self._keys(client)[1]))

    def global_wait(self) -> int:
        """Seconds every client must wait, once the minute's budget of wrong passwords is spent (0: none)."""
        if not self.global_failures:
            return 0
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._global_key)
            pipe.pttl(self._global_key)
            spent, left_ms = pipe.execute()
        return _seconds(left_ms) if int(spent or 0) >= self.global_failures else 0

    def failed(self, client: str) -> None:
        failures_key, locked_key = self._keys(client)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(failures_key)
            # The count outlives the longest lockout, so waiting one out does not reset it.
            pipe.expire(failures_key, 2 * self.max_lockout)
            pipe.incr(self._global_key)
            pipe.expire(self._global_key, GLOBAL_LOGIN_WINDOW, nx=True)
            failures = pipe.execute()[0]
        beyond = failures - self.free_failures
        if beyond > 0:
            lockout = min(2 ** min(beyond - 1, 30), self.max_lockout)
            self.redis.set(locked_key, 1, ex=lockout)

    def succeeded(self, client: str) -> None:
        self.redis.delete(self._keys(client)[0])


def _seconds(left_ms: int) -> int:
    """A key's time to live (PTTL) in whole seconds, rounded up; 0 once gone."""
    return math.ceil(left_ms / 1000) if left_ms > 0 else 0
