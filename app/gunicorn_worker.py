"""gunicorn's gevent worker, answering the errors gunicorn raises itself (a request line
or headers too long, a malformed request line) in the service's JSON error shape
instead of gunicorn's HTML page. Everything else is gunicorn's own behaviour.

gevent serves each connection in its own greenlet, so a client that sends its request a
byte at a time holds one greenlet, not one of the few worker processes; gunicorn gives up
on a request whose headers take longer than ``keepalive`` seconds.
"""

from __future__ import annotations

import json
import socket
import warnings
from typing import Any

import gevent
from gevent.monkey import MonkeyPatchWarning
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    code = reason.lower().replace(" ", "_")
    body = json.dumps({"error": code, "message": mesg or reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


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
        super().init_process()

    def handle_request(self, listener_name: Any, req: Any, sock: socket.socket, addr: Any) -> None:
        # A keep-alive connection whose next request has already arrived is read without
        # blocking, so its greenlet would never yield to the others: a busy client would hold
        # the worker and the other connections would wait (half a second at p99 under wrk).
        # Yield after every request, so that connections take turns.
        try:
            super().handle_request(listener_name, req, sock, addr)
        finally:
            gevent.sleep(0)
