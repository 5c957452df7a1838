"""Stored records' JSON bodies, kept in the web process and dropped the moment Redis says
their record changed.

``GET /getBookInfo`` answers mostly books that are stored and do not change for days, and
a Redis round trip costs more than the rest of the request. So each web process keeps the
bodies it answered, and Redis's server-assisted client-side caching keeps them true:
one connection per process turns on ``CLIENT TRACKING`` in broadcasting mode for the
record keys and subscribes to ``__redis__:invalidate``, where Redis then names every
record key that is written, deleted, expired or evicted (or says "all" on a flush).
A background thread reads those messages and drops the entries.

The cache answers only while that connection is up. When it breaks (Redis restarts, a
network fault, a missed ping), every entry is dropped and lookups go to Redis until
tracking is on again, so a lookup never answers from a record Redis no longer holds.
Each new connection goes to the master (``books.redis_client``: with Sentinel, the one the
sentinels name now), and tracking turns on only once that server says it is a master: after
a failover the old master's connection breaks (Sentinel closes it as it demotes the server,
or the listener finds the sentinels naming another master) and the cache starts over,
empty, on the new one.

A record read while its key changes is not kept: ``fetch`` leaves a ticket before it
reads, an invalidation takes the ticket away, and a body is kept only if its ticket is
still there once it is read. Bodies are kept in least-recently-used order, at most
``max_entries`` of them and at most ``max_bytes`` bytes of them (``RECORD_CACHE_SIZE``,
``RECORD_CACHE_BYTES``); a body bigger than ``max_bytes`` is answered but not kept.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from redis import Redis
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.retry import Retry

from books.redis_client import on_current_master, redis_client
from books.settings import Settings

INVALIDATION_CHANNEL = "__redis__:invalidate"
PING_INTERVAL = 1.0
RECONNECT_DELAY = 1.0

log = logging.getLogger(__name__)


class RecordCache:
    """Per-process cache of record bodies by book id, coherent with Redis."""

    def __init__(
        self, settings: Settings, record_key_prefix: str, max_entries: int, socket_timeout: float, max_bytes: int
    ) -> None:
        self.settings = settings
        self.record_key_prefix = record_key_prefix
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.socket_timeout = socket_timeout
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._tickets: dict[str, object] = {}
        self._live = False
        self._stop = threading.Event()
        self._pid: int | None = None

    def fetch(self, book_id: str, load: Callable[[], bytes | None]) -> bytes | None:
        """The book's body from the cache, or from ``load()`` (kept when it is safe to)."""
        if self.max_entries <= 0 or self.max_bytes <= 0:
            return load()
        self._ensure_listener()
        with self._lock:
            body = self._entries.get(book_id)
            if body is not None:
                self._entries.move_to_end(book_id)
                return body
            ticket = object() if self._live else None
            if ticket is not None:
                self._tickets[book_id] = ticket
        try:
            body = load()
        finally:
            if ticket is not None:
                self._keep(book_id, ticket, body)
        return body

    @property
    def live(self) -> bool:
        """Whether tracking is on, so that bodies are kept and answered."""
        return self._live

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_in_bytes(self) -> int:
        """The bytes of the bodies kept."""
        return self._bytes

    def close(self) -> None:
        """Stop the listener; the cache then keeps nothing."""
        self._stop.set()
        self._set_live(False)

    def _keep(self, book_id: str, ticket: object, body: bytes | None) -> None:
        with self._lock:
            if self._tickets.get(book_id) is not ticket:
                return  # invalidated (or read again) while it was read: not kept
            del self._tickets[book_id]
            if body is None or not self._live or len(body) > self.max_bytes:
                return
            self._drop(book_id)
            self._entries[book_id] = body
            self._bytes += len(body)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._bytes -= len(self._entries.popitem(last=False)[1])

    def _drop(self, book_id: str) -> None:
        body = self._entries.pop(book_id, None)
        if body is not None:
            self._bytes -= len(body)

    def _clear(self) -> None:
        self._entries.clear()
        self._tickets.clear()
        self._bytes = 0

    def _invalidate(self, keys: list[bytes] | None) -> None:
        with self._lock:
            if keys is None:  # FLUSHDB / FLUSHALL
                self._clear()
                return
            start = len(self.record_key_prefix)
            for key in keys:
                book_id = key.decode()[start:]
                self._drop(book_id)
                self._tickets.pop(book_id, None)

    def _set_live(self, live: bool) -> None:
        with self._lock:
            self._live = live
            self._clear()

    def _ensure_listener(self) -> None:
        """Start the listener thread in this process (again after a fork)."""
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._live = False
            self._clear()
        threading.Thread(target=self._listen_forever, name="record-cache", daemon=True).start()

    def _listen_forever(self) -> None:
        last_complaint = None
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as error:  # any fault of the connection: drop everything, start over
                complaint = f"{type(error).__name__}: {error}"
                if self._live or complaint != last_complaint:  # once per outage, not once a second
                    log.warning("record cache off until Redis tracking is back: %s", complaint)
                last_complaint = complaint
            self._set_live(False)
            self._stop.wait(RECONNECT_DELAY)

    def _listen(self) -> None:
        # RESP2, so that invalidations arrive as pub/sub messages; no retries, so that a broken
        # connection ends this listener instead of coming back without tracking.
        client = redis_client(
            self.settings,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.socket_timeout,
            socket_timeout=self.socket_timeout,
        )
        pubsub = client.pubsub()
        try:
            pubsub.execute_command("ROLE")
            role = pubsub.parse_response(timeout=self.socket_timeout)
            if role[0] != b"master":
                raise ConnectionError("Redis is not the master (a failover is under way)")
            pubsub.execute_command("CLIENT", "ID")
            client_id = pubsub.parse_response(timeout=self.socket_timeout)
            pubsub.execute_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", self.record_key_prefix
            )
            if pubsub.parse_response(timeout=self.socket_timeout) != b"OK":
                raise ConnectionError("Redis refused CLIENT TRACKING")
            pubsub.subscribe(INVALIDATION_CHANNEL)
            self._read_messages(client, pubsub)
        finally:
            pubsub.close()
            client.close()

    def _read_messages(self, client: Redis, pubsub: PubSub) -> None:
        last_heard = time.monotonic()
        last_ping = 0.0
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=PING_INTERVAL)
            now = time.monotonic()
            if message is not None:
                last_heard = now
                kind = message["type"]
                if kind == "subscribe":
                    if self._live:
                        raise ConnectionError("subscribed again: tracking may have been lost")
                    self._set_live(True)
                elif kind == "message":
                    self._invalidate(message["data"])
            if now - last_heard > PING_INTERVAL + self.socket_timeout:
                raise ConnectionError(f"no answer from Redis for {now - last_heard:.1f} s")
            if now - last_ping >= PING_INTERVAL:
                if not on_current_master(client, pubsub.connection):
                    raise ConnectionError("the sentinels name another master")
                pubsub.ping()
                last_ping = now
