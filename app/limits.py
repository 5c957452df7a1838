"""Per-client limits of the web side, counted in Redis so that every gunicorn worker and
every web host shares them: POSTs per window, bytes of batch data kept, books waiting, and
the dashboard's wrong passwords.

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
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from flask import request
from redis import Redis
from rq.job import Job
from werkzeug.middleware.proxy_fix import ProxyFix

from app.errors import ApiError
from books.links import BookId
from books.queue import ACTIVE_JOB_STATUSES, job_id
from books.slots import Slots

Network = IPv4Network | IPv6Network

# Batch bytes are counted in windows of an eighth of BATCH_TTL, each kept until the last batch
# it counts has expired: the count is never below the bytes kept, and at most one window above.
BATCH_BYTES_WINDOWS = 8
# A POST looks at this many of its client's oldest books more than it adds, to drop those done.
SHARE_PRUNE_EXTRA = 1000


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
class BatchSpace:
    """Bytes of batch data kept (each batch for ``ttl`` seconds), at most ``client_bound`` per
    client and ``total_bound`` in all (0: no bound). A POST is checked before it queues
    anything and charged once its batch is kept; concurrent POSTs can pass the check
    together: the bounds are soft by their size."""

    redis: Redis
    key_prefix: str
    client_bound: int
    total_bound: int
    ttl: int

    @property
    def _width(self) -> int:
        return max(1, math.ceil(self.ttl / BATCH_BYTES_WINDOWS))

    def _keys(self, scope: str, windows: Iterable[int]) -> list[str]:
        return [f"{self.key_prefix}:batch-bytes:{scope}:{window}" for window in windows]

    def refusal(self, client: str, size: int) -> tuple[str, int] | None:
        """None if ``size`` more bytes keep within both bounds; else the bound passed
        (``client`` or ``total``) and the seconds until its oldest bytes expire."""
        now = time.time()
        current = int(now // self._width)
        windows = range(current - BATCH_BYTES_WINDOWS, current + 1)
        counts = self.redis.mget(self._keys(f"client:{client}", windows) + self._keys("all", windows))
        for scope, bound, scope_counts in (
            ("client", self.client_bound, counts[: len(windows)]),
            ("total", self.total_bound, counts[len(windows) :]),
        ):
            kept = [int(count or 0) for count in scope_counts]
            if bound and sum(kept) + size > bound:
                oldest = next((window for window, count in zip(windows, kept, strict=True) if count), current)
                return scope, max(1, math.ceil(self._expiry(oldest) - now))
        return None

    def charge(self, client: str, size: int) -> None:
        """Count ``size`` bytes, kept from now, for the client and in all."""
        if not (self.client_bound or self.total_bound):
            return
        current = int(time.time() // self._width)
        with self.redis.pipeline(transaction=False) as pipe:
            for key in self._keys(f"client:{client}", [current]) + self._keys("all", [current]):
                pipe.incrby(key, size)
                pipe.expireat(key, math.ceil(self._expiry(current)))
            pipe.execute()

    def _expiry(self, window: int) -> float:
        """When every batch a window counts has expired (epoch seconds)."""
        return (window + 1) * self._width + self.ttl


# KEYS[1]: a client's books, by the time they were queued. ARGV[1]: the prefix of a book's job
# hash; ARGV[2]: how many of the oldest to look at; then the statuses of a job still waiting.
# Drops those whose job is over (or gone); returns how many books are left.
_PRUNE_SCRIPT = """
local active = {}
for i = 3, #ARGV do active[ARGV[i]] = true end
local done = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
    if not active[redis.call('HGET', ARGV[1] .. id, 'status') or ''] then done[#done + 1] = id end
end
for i = 1, #done, 1000 do redis.call('ZREM', KEYS[1], unpack(done, i, math.min(i + 999, #done))) end
return redis.call('ZCARD', KEYS[1])
"""


class QueueShare:
    """The books one client has waiting (queued, put aside, running), at most ``share`` (0: no
    share), so that one client cannot fill ``MAX_QUEUED_BOOKS`` for everyone. Each client's
    books queued by its POSTs are kept in a sorted set, oldest first; a POST drops those of the
    oldest whose job is over, looking at as many as it adds and ``SHARE_PRUNE_EXTRA`` more (the
    queue is served oldest first, so those are the ones done), which keeps its cost in
    proportion to its own size."""

    def __init__(self, redis: Redis, key_prefix: str, share: int, ttl: int) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self.share = share
        self.ttl = ttl
        self._prune = redis.register_script(_PRUNE_SCRIPT)
        self._job_key_prefix = Job.key_for(job_id(BookId("")))

    def _key(self, client: str) -> str:
        return f"{self.key_prefix}:client-books:{client}"

    def waiting(self, client: str, adding: int) -> int:
        """How many of the client's books wait, once those done among its oldest are dropped."""
        if not self.share:
            return 0
        looked_at = adding + SHARE_PRUNE_EXTRA
        return int(self._prune(keys=[self._key(client)], args=[self._job_key_prefix, looked_at, *ACTIVE_JOB_STATUSES]))

    def add(self, client: str, book_ids: list[BookId]) -> None:
        """Count the books a POST of the client queued; the set expires ``ttl`` after its last POST."""
        if not (self.share and book_ids):
            return
        now = time.time()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key(client), dict.fromkeys(book_ids, now))
            pipe.expire(self._key(client), self.ttl)
            pipe.execute()


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
