"""Slow clients for tests and benchmarks: sockets on 127.0.0.1 that send a request a byte at
a time, its headers (a lookup that never ends) or its body (a POST whose body never ends).
A socket the server closes is opened again, so the storm stays as large as asked."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

HEADER_START = b"GET /getBookInfo?url=goodreads.com/book/show/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
BODY_HEAD = (
    b"POST /parseGoodreadsLinks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n["
)


class SlowClients:
    """``headers`` sockets trickling headers and ``bodies`` sockets trickling POST bodies, one
    byte each every ``interval`` seconds, for as long as the ``with`` block lasts; from the
    loopback addresses ``sources`` in turn (every 127.x address is this host's)."""

    def __init__(
        self, port: int, headers: int, bodies: int, interval: float = 0.5, sources: tuple[str, ...] = ("127.0.0.1",)
    ) -> None:
        self.port = port
        self.sources = sources
        self.kinds = [HEADER_START] * headers + [BODY_HEAD] * bodies
        self.interval = interval
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(10)

    def _open(self, n: int) -> socket.socket | None:
        try:
            source = (self.sources[n % len(self.sources)], 0)
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2, source_address=source)
            sock.sendall(self.kinds[n])
            sock.setblocking(False)
            return sock
        except OSError:
            return None

    def _run(self) -> None:
        sockets = [self._open(n) for n in range(len(self.kinds))]
        try:
            while not self._stop.wait(self.interval):
                for n, sock in enumerate(sockets):
                    if sock is not None:
                        try:
                            sock.send(b"X" if self.kinds[n] is HEADER_START else b" ")
                            continue
                        except OSError:  # closed by the server (or its buffer full): open again
                            sock.close()
                    self.reconnects += 1
                    sockets[n] = self._open(n)
        finally:
            for sock in sockets:
                if sock is not None:
                    sock.close()


def timed_gets(url: str, seconds: float, params: dict[str, str] | None = None) -> list[tuple[int, float]]:
    """GET ``url`` one request after the other for ``seconds``: (status, seconds taken) of each;
    status 0 for a request that failed (10 s timeout)."""
    import requests

    results = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.monotonic()
        try:
            status = requests.get(url, params=params, timeout=10).status_code
        except requests.RequestException:
            status = 0
        results.append((status, time.monotonic() - start))
    return results


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
