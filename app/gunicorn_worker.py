"""gunicorn's gevent worker, answering the errors gunicorn raises itself (a request line
or headers too long, a malformed request line) in the service's JSON error shape
instead of gunicorn's HTML page. Everything else is gunicorn's own behaviour.

gevent serves each connection in its own greenlet, so a client that sends its request a
byte at a time holds one greenlet, not one of the few worker processes; gunicorn gives up
on a request whose headers take longer than ``keepalive`` seconds. Past gunicorn, this worker
bounds what slow or numerous connections of one client can hold: a request's whole body must
arrive within ``REQUEST_BODY_TIMEOUT`` seconds (``408`` and the connection closed), and one
client address holds at most ``MAX_CLIENT_CONNECTIONS`` connections at once in each worker
(one more is answered ``429`` and closed), so the ``worker_connections`` every client shares
cannot be filled from one or two addresses.
"""

from __future__ import annotations

import json
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from ipaddress import ip_address
from typing import Any

import gevent
from gevent.monkey import MonkeyPatchWarning
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker
from werkzeug.exceptions import RequestTimeout

from books.settings import Settings


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    code = reason.lower().replace(" ", "_")
    body = json.dumps({"error": code, "message": mesg or reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


class BodyDeadline:
    """A request's body (gunicorn's reader, ``wsgi.input``) that must arrive whole within
    ``seconds``: a read still waiting then raises ``RequestTimeout`` (the API answers 408) and
    the connection's reading side is shut, so the rest of the body is never waited for."""

    def __init__(self, body: Any, sock: socket.socket, seconds: float) -> None:
        self.body = body
        self.sock = sock
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def _within(self, read: Callable[..., Any], *args: Any) -> Any:
        timeout = gevent.Timeout(max(self.deadline - time.monotonic(), 0.001))
        timeout.start()
        try:
            return read(*args)
        except gevent.Timeout as expired:
            if expired is not timeout:
                raise
            with suppress(OSError):
                self.sock.shutdown(socket.SHUT_RD)
            raise RequestTimeout(
                f"the request body did not arrive within {self.seconds:g} s (REQUEST_BODY_TIMEOUT)"
            ) from None
        finally:
            timeout.close()

    def read(self, size: int | None = None) -> bytes:
        return self._within(self.body.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._within(self.body.readline, size)

    def readlines(self, size: int | None = None) -> list[bytes]:
        return self._within(self.body.readlines, size)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class ClientConnections:
    """Connections open per client address in this worker, at most ``limit`` each (0: no cap);
    addresses in ``exempt`` (the trusted proxies, which carry many clients) are not capped."""

    def __init__(self, limit: int, exempt: tuple[Any, ...] = ()) -> None:
        self.limit = limit
        self.exempt = exempt
        self.open: Counter[str] = Counter()

    def take(self, address: str) -> bool:
        """Count one more connection of ``address``; False (nothing counted) past the cap."""
        if self.limit and self.open[address] >= self.limit and not self._exempt(address):
            return False
        self.open[address] += 1
        return True

    def give_back(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def _exempt(self, address: str) -> bool:
        try:
            parsed = ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.exempt)


class JsonErrorWorker(GeventWorker):
    def patch(self) -> None:
        # gunicorn imports ssl (for its TLS settings) before a worker patches the standard
        # library, and gevent warns of that on stderr, outside the JSON logs. It is harmless
        # here: nothing makes a TLS context before the patch (redis-py makes one, for a
        # rediss:// REDIS_URL, when it connects).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Monkey-patching ssl after ssl", MonkeyPatchWarning)
            super().patch()

    def init_process(self) -> None:
        # gunicorn writes its error pages with util.write_error (Worker.handle_error); this
        # process serves the service alone, so every one of them is written as JSON.
        util.write_error = write_json_error
        settings = Settings.from_env()
        self.body_timeout = settings.request_body_timeout
        self.connections = ClientConnections(settings.max_client_connections, settings.trusted_proxy_networks)
        super().init_process()

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        """gunicorn's handling of a connection, unless its client already holds
        MAX_CLIENT_CONNECTIONS of them here: then 429, and the connection is closed."""
        address = addr[0] if isinstance(addr, tuple) and addr else ""
        if not address:  # a Unix socket: no client address to count
            return super().handle(listener, client, addr)
        if not self.connections.take(address):
            with suppress(OSError):
                write_json_error(
                    client,
                    429,
                    "Too Many Requests",
                    f"at most {self.connections.limit} open connections per client (MAX_CLIENT_CONNECTIONS)",
                )
            util.close(client)
            return None
        try:
            return super().handle(listener, client, addr)
        finally:
            self.connections.give_back(address)

    def handle_request(self, listener_name: Any, req: Any, sock: socket.socket, addr: Any) -> None:
        # A keep-alive connection whose next request has already arrived is read without
        # blocking, so its greenlet would never yield to the others: a busy client would hold
        # the worker and the other connections would wait (half a second at p99 under wrk).
        # Yield after every request, so that connections take turns.
        # The app reads the body within REQUEST_BODY_TIMEOUT; what it left unread, gunicorn
        # skips before the connection's next request, within keepalive, through its own reader.
        body = req.body
        req.body = BodyDeadline(body, sock, self.body_timeout)
        try:
            super().handle_request(listener_name, req, sock, addr)
        finally:
            req.body = body
            gevent.sleep(0)
