"""Callbacks: one signed POST to a client's URL when every book of its batch has settled.

Which URLs are allowed (pure), how a body is signed (pure), and what Redis keeps per batch:

- ``<prefix>:callback:<batch_id>``          a hash: ``url``, ``batch_url``
- ``<prefix>:callback:<batch_id>:pending``  a sorted set: the books not yet settled, by
  their position in the batch (checked from the first, in the order they are fetched)
- ``<prefix>:callback:<batch_id>:claimed``  set once, atomically, by whoever sees the batch
  done first: only that process schedules the delivery
- ``<prefix>:callback:<batch_id>:delivered`` set once a delivery was answered with a 2xx
- ``<prefix>:callbacks:open``               the batches whose callback is not yet claimed

Every key expires with the batch (``BATCH_TTL``). Deliveries under way to one host and port
hold slots (``books.slots.Slots``) in ``<prefix>:callback-host:<host>:<port>``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from ipaddress import ip_address
from typing import cast
from urllib.parse import urlsplit

from redis import Redis

from books.control import enqueue_control, schedule_next
from books.jobs import CALLBACK_DELIVERY, CALLBACKS_CHECK
from books.links import BookId
from books.settings import Settings
from books.slots import Slots

SIGNATURE_HEADER = "X-Signature-256"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
MAX_URL_LENGTH = 2000
DEFAULT_PORTS = {"http": 80, "https": 443}
# Names that always mean this very host, whatever its addresses.
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "0.0.0.0", "::"})

Address = tuple[str, int]
# Seconds a delivery's slot outlives CALLBACK_TIMEOUT.
LEASE_MARGIN = 5.0


def refusal(url: str, allowed: frozenset[Address], own: Iterable[Address] = ()) -> str | None:
    """Why a callback URL is refused, or None: http(s) only, no user or password, its host and
    port exactly one of ``CALLBACK_ALLOWED_HOSTS``, and never one of ``own`` (this service's web
    and Redis addresses), so a callback cannot reach anything else."""
    if not allowed:
        return "callbacks are off on this service (CALLBACK_ALLOWED_HOSTS is not set)"
    if len(url) > MAX_URL_LENGTH or any(char.isspace() or ord(char) < 32 for char in url):
        return f"the callback URL must be one line of at most {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "the callback URL is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "the callback URL must start with http:// or https://"
    if parts.username is not None or parts.password is not None:
        return "the callback URL must not hold a user name or password"
    target = target_address(url)
    if any(same_address(target, address) for address in own):
        return "callbacks never go to this service's own web or Redis address"
    if target not in allowed:
        named = f"{target[0]}:{target[1]}" if target[0] else "an empty host"
        return f"callbacks may only go to the hosts and ports in CALLBACK_ALLOWED_HOSTS, not {named!r}"
    return None


def same_address(one: Address, other: Address) -> bool:
    """The same port on the same host: the same name, or two names for this host (loopback)."""
    return one[1] == other[1] and (one[0] == other[0] or (is_local(one[0]) and is_local(other[0])))


def is_local(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-Signature-256`` value: ``sha256=`` and the HMAC-SHA256, in hex, of the
    timestamp sent in ``X-Signature-Timestamp``, a dot and the body: a receiver that refuses
    old timestamps cannot be sent a delivery again by whoever recorded it."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class Callbacks:
    """The callbacks waiting for their batch, on one Redis connection."""

    def __init__(self, redis: Redis, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl
        self.open_key = f"{prefix}:callbacks:open"

    def key(self, batch_id: str, part: str = "") -> str:
        return f"{self.prefix}:callback:{batch_id}{':' + part if part else ''}"

    def register(self, batch_id: str, url: str, batch_url: str, pending: Iterable[BookId]) -> None:
        """Wait for ``pending`` (the batch's books not settled yet, in batch order)."""
        members: dict[str, int] = {book_id: position for position, book_id in enumerate(dict.fromkeys(pending))}
        with self.redis.pipeline() as pipe:
            pipe.hset(self.key(batch_id), mapping={"url": url, "batch_url": batch_url})
            pipe.expire(self.key(batch_id), self.ttl)
            if members:
                pipe.zadd(self.key(batch_id, "pending"), members)
                pipe.expire(self.key(batch_id, "pending"), self.ttl)
            pipe.sadd(self.open_key, batch_id)
            pipe.execute()

    def open_batches(self) -> list[str]:
        return sorted(member.decode() for member in cast(set[bytes], self.redis.smembers(self.open_key)))

    def target(self, batch_id: str) -> tuple[str, str] | None:
        """The callback URL and the batch's URL, or None once the batch expired."""
        url, batch_url = cast(list[bytes | None], self.redis.hmget(self.key(batch_id), "url", "batch_url"))
        return (url.decode(), batch_url.decode()) if url and batch_url else None

    def pending(self, batch_id: str, count: int) -> list[BookId]:
        """The first ``count`` books still pending, in batch order."""
        members = cast(list[bytes], self.redis.zrange(self.key(batch_id, "pending"), 0, count - 1))
        return [BookId(member.decode()) for member in members]

    def settle(self, batch_id: str, book_ids: list[BookId]) -> int:
        """Books no longer pending; return how many remain."""
        with self.redis.pipeline(transaction=False) as pipe:
            if book_ids:
                pipe.zrem(self.key(batch_id, "pending"), *book_ids)
            pipe.zcard(self.key(batch_id, "pending"))
            return int(pipe.execute()[-1])

    def claim(self, batch_id: str) -> bool:
        """True for exactly one caller per batch: the one that will schedule its delivery."""
        won = bool(self.redis.set(self.key(batch_id, "claimed"), 1, nx=True, ex=self.ttl))
        self.redis.srem(self.open_key, batch_id)
        return won

    def forget(self, batch_id: str) -> None:
        """Stop waiting for a batch that expired."""
        self.redis.srem(self.open_key, batch_id)

    def delivered(self, batch_id: str) -> bool:
        return bool(self.redis.exists(self.key(batch_id, "delivered")))

    def mark_delivered(self, batch_id: str) -> None:
        self.redis.set(self.key(batch_id, "delivered"), 1, ex=self.ttl)


def host_slots(redis: Redis, settings: Settings) -> Slots:
    """Deliveries at once per host and port: CALLBACK_HOST_CONCURRENCY, each lease outliving
    CALLBACK_TIMEOUT by a little (a worker killed mid-delivery gives none back)."""
    return Slots(
        redis,
        f"{settings.key_prefix}:callback-host",
        settings.callback_host_concurrency,
        settings.callback_timeout + LEASE_MARGIN,
    )


def slot_name(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def target_address(url: str) -> Address:
    """The host and port a callback URL (one ``refusal`` let through) is sent to."""
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS[parts.scheme]


def wait_for_batch(
    redis: Redis, settings: Settings, batch_id: str, url: str, batch_url: str, pending: list[BookId]
) -> None:
    """Call ``url`` back once the ``pending`` books of the batch have settled: at once if none
    is pending, else after a check finds them settled (within CALLBACK_CHECK_INTERVAL)."""
    callbacks = Callbacks(redis, settings.key_prefix, settings.batch_ttl)
    callbacks.register(batch_id, url, batch_url, pending)
    if pending:
        schedule_next(redis, settings, CALLBACKS_CHECK, settings.callback_check_interval)
    else:
        deliver_once(callbacks, settings, batch_id)


def deliver_once(callbacks: Callbacks, settings: Settings, batch_id: str) -> bool:
    """Schedule the batch's delivery if this caller wins its claim (only one ever does)."""
    if not callbacks.claim(batch_id):
        return False
    enqueue_control(callbacks.redis, settings, CALLBACK_DELIVERY, batch_id)
    return True
