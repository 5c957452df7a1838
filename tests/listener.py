"""A local callback receiver: records every POST and answers with the statuses it is told."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Listener:
    """``Listener(500, 200)`` answers 500 to the first POST, then 200 to every other one."""

    def __init__(self, *statuses: int, location: str | None = None) -> None:
        self.statuses = list(statuses) or [200]
        self.location = location
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, received: Received) -> int:
        with self.lock:
            self.received.append(received)
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def verified(received: Received, secret: str, window: float = 300) -> bool:
    """A receiver's check, as the README gives it: the signature over the timestamp, a dot and
    the body, and the timestamp within ``window`` seconds of now (so a recorded delivery
    cannot be sent again later)."""
    timestamp = received.headers.get("X-Signature-Timestamp", "")
    signed = timestamp.encode() + b"." + received.body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= window
    return fresh and hmac.compare_digest(received.headers.get("X-Signature-256", ""), expected)


def _handler(listener: Listener):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = listener.answer(Received(self.path, dict(self.headers), body))
            self.send_response(status)
            if listener.location and 300 <= status < 400:
                self.send_header("Location", listener.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


class DripListener:
    """A callback receiver that never finishes answering: it reads the request, then sends one
    byte of a status line every ``interval`` seconds until the caller hangs up. It notes how
    long each caller stayed, and the most callers it had at once."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.stays: list[float] = []
        self.open_now = 0
        self.most_at_once = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> DripListener:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self.thread.join(5)
        self.server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._drip, args=(sock,), daemon=True).start()

    def _drip(self, sock: socket.socket) -> None:
        started = time.monotonic()
        with self.lock:
            self.open_now += 1
            self.most_at_once = max(self.most_at_once, self.open_now)
        sock.settimeout(self.interval)
        try:
            while not self._stop.is_set():
                sock.sendall(b"H")
                try:
                    if sock.recv(65536) == b"":  # the caller hung up
                        break
                except TimeoutError:
                    pass
        except OSError:
            pass
        finally:
            sock.close()
            with self.lock:
                self.open_now -= 1
                self.stays.append(time.monotonic() - started)
