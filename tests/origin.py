"""A local stand-in for www.goodreads.com that serves book pages and misbehaves on command.

Each book answers with a list of behaviours, one per request, the last one repeating:
``origin.behave("42", "503", "503", "page")``; books without their own answer with
``origin.everyone(...)`` (a page by default), so ``origin.everyone("waf")`` challenges all
and ``origin.everyone("page")`` lifts it. ``/robots.txt`` serves ``origin.robots_txt``
(404 while None), or its own behaviours (``origin.behave("robots.txt", "503")``); its
requests are kept apart (``origin.robots_fetches``), so ``fetches()`` counts pages alone and
``requests()`` everything.
``origin.require_cookie = "sid=..."`` challenges every book request without that cookie.
Every request is recorded with its arrival time, cookie and client port, so tests can count
fetches, measure their spacing and tell connections apart.

``python -m tests.origin [--port N] [command ...]`` serves these pages on 127.0.0.1 (port
8081 by default); with a command (``honcho start``), it runs it with ``GOODREADS_BASE_URL``
pointing at the pages and stops when it ends: the service without goodreads.com. There, as in
the README's examples, book ``404404`` is one Goodreads does not have (HTTP 404), and the
command gets ``FETCH_RATE=0`` (no limit: the pages are on this machine) unless it sets one.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.local_server import LocalServer

FIXTURES = Path(__file__).parent / "fixtures"
PAGE_TEMPLATE = (FIXTURES / "next_apollo.html").read_text()
SIGN_IN_PAGE = (FIXTURES / "signin_wall.html").read_bytes()
# A small page as AWS WAF serves it when it challenges or asks for a CAPTCHA (written here).
CHALLENGE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Checking your connection</title>"
    b'<script src="https://example123.token.awswaf.com/example/challenge.js"></script></head>'
    b"<body><noscript>JavaScript is needed to continue.</noscript></body></html>"
)
CAPTCHA_PAGE = (
    b"<!DOCTYPE html><html><head><title>Confirm you are human</title>"
    b'<script src="https://example123.token.awswaf.com/example/captcha.js"></script></head>'
    b'<body><div id="captcha-container"></div></body></html>'
)
# AWS WAF's challenge script as every goodreads.com page loads it in its <head> since
# September 2026 (the address's shape; the ids are made up).
WAF_SCRIPT = (
    b'<script src="https://a1b2c3d4e5f6.edge.sdk.awswaf.com/a1b2c3d4e5f6/0123456789ab/challenge.js" defer></script>'
)
ROBOTS = "robots.txt"
_BOOK = re.compile(r"^/book/show/(\d+)")
# The book the README's examples show as not_found.
MISSING_BOOK = "404404"
# The demo's request rate to its own pages (FETCH_RATE), unless the command's environment sets one.
DEMO_FETCH_RATE = "0"
# How often the server looks for a shutdown request: ``stop`` waits up to this long, once per test.


def book_page(book_id: str, title: str | None = None) -> bytes:
    """The current-layout fixture page, made to describe ``book_id``."""
    page = PAGE_TEMPLATE.replace("4242", book_id)
    if title:
        page = page.replace("The Long Way Home", title)
    return page.encode()


def with_waf_script(page: bytes, where: str = "head") -> bytes:
    """``page`` loading AWS WAF's challenge script: just inside its <head>, or at the end of
    its body."""
    lowered = page.lower()
    if where == "head":
        head = lowered.find(b"<head")
        at = lowered.find(b">", head) + 1 if head != -1 else 0
    else:
        at = next((found for tag in (b"</body", b"</html") if (found := lowered.rfind(tag)) != -1), len(page))
    return page[:at] + WAF_SCRIPT + page[at:]


@dataclass(frozen=True)
class Arrival:
    at: float
    path: str
    book_id: str | None
    cookie: str | None = None
    client_port: int | None = None  # the client's end of the connection: one per connection


class Origin(LocalServer):
    def __init__(self, page: Callable[[str], bytes] | None = None, port: int = 0) -> None:
        """``page(book_id)`` makes a book's page; by default the fixture page made to describe it."""
        self.page = page
        self.behaviours: dict[str, list[str]] = {}
        self.default_steps: list[str] = ["page"]
        self.robots_txt: str | None = None
        self.require_cookie: str | None = None
        self.arrivals: list[Arrival] = []
        self.robots_fetches: list[Arrival] = []
        self.lock = threading.Lock()
        super().__init__(_handler(self), port)

    def behave(self, book_id: str, *steps: str) -> None:
        """Refuses a step that names no behaviour, so a typo fails the test instead of
        silently serving something else."""
        if not steps:
            raise ValueError(f"book {book_id}: give at least one behaviour")
        for step in steps:
            name = step.partition(":")[0]
            if not (name.isdigit() and 100 <= int(name) <= 599) and name not in BEHAVIOURS:
                raise ValueError(
                    f"book {book_id}: unknown behaviour {step!r}; use an HTTP status or one of {sorted(BEHAVIOURS)}"
                )
        with self.lock:
            self.behaviours[book_id] = list(steps)

    def everyone(self, *steps: str) -> None:
        """What every book without its own behaviour answers from now on."""
        with self.lock:
            self.default_steps = list(steps)

    def requests(self) -> list[Arrival]:
        """Every request, robots.txt's too, in order of arrival."""
        with self.lock:
            return sorted(self.arrivals + self.robots_fetches, key=lambda arrival: arrival.at)

    def fetches(self, book_id: str | None = None) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if book_id is None or a.book_id == book_id]

    def next_step(self, path: str, cookie: str | None = None, client_port: int | None = None) -> tuple[str | None, str]:
        match = _BOOK.match(path)
        book_id = match.group(1) if match else None
        arrival = Arrival(time.monotonic(), path, book_id, cookie, client_port)
        with self.lock:
            if path == f"/{ROBOTS}":
                self.robots_fetches.append(arrival)
                steps = self.behaviours.get(ROBOTS, ["robots"])
            else:
                self.arrivals.append(arrival)
                if book_id is None:
                    return None, "404"
                if self.require_cookie and self.require_cookie not in (cookie or ""):
                    return book_id, "waf"
                steps = self.behaviours.get(book_id, self.default_steps)
            step = steps.pop(0) if len(steps) > 1 else steps[0]
        return book_id, step


def _handler(origin: Origin):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: the headers and the body go out in two writes, and with Nagle's algorithm
        # the body's last segment waited for the client's delayed ACK of the headers (some 40 ms
        # a page), which capped the benchmarks at about 20 books/s per worker.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            book_id, step = origin.next_step(self.path, self.headers.get("Cookie"), self.client_address[1])
            name, _, argument = step.partition(":")
            try:
                if name.isdigit() and name != "429":
                    self._status(book_id, name)
                else:
                    getattr(self, f"_{name}")(book_id, argument)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up or was killed
                self.close_connection = True

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _page(self, book_id, title):
            self._send(200, origin.page(book_id) if origin.page else book_page(book_id, title or None))

        def _slow(self, book_id, seconds):
            time.sleep(float(seconds or 1))
            self._page(book_id, "")

        def _status(self, book_id, code):
            self._send(int(code), f"<html><body>HTTP {code}</body></html>".encode())

        def _429(self, book_id, retry_after):
            self._send(429, b"Too Many Requests", {"Retry-After": retry_after or "1"})

        def _cookie(self, book_id, cookie):
            self._send(
                200, origin.page(book_id) if origin.page else book_page(book_id), {"Set-Cookie": f"{cookie}; Path=/"}
            )

        def _waf(self, book_id, _):
            self._send(202, b"", {"x-amzn-waf-action": "challenge"})

        def _challenge(self, book_id, _):
            self._send(202, CHALLENGE_PAGE, {"x-amzn-waf-action": "challenge"})

        def _challengepage(self, book_id, _):  # the page alone, without the header
            self._send(202, CHALLENGE_PAGE)

        def _interstitial(self, book_id, _):  # the page alone, HTTP 200, without the header
            self._send(200, CHALLENGE_PAGE)

        def _wafscript(self, book_id, _):  # the book's page, loading the challenge script as goodreads.com's do
            self._send(200, with_waf_script(origin.page(book_id) if origin.page else book_page(book_id)))

        def _captcha(self, book_id, _):
            self._send(405, CAPTCHA_PAGE, {"x-amzn-waf-action": "captcha"})

        def _robots(self, book_id, _):
            if origin.robots_txt is None:
                self._status(book_id, "404")
            else:
                self._send(200, origin.robots_txt.encode())

        def _signin(self, book_id, _):
            self._send(200, SIGN_IN_PAGE)

        def _redirect(self, book_id, target):
            self._send(302, b"", {"Location": target or f"/book/show/{book_id}.Some_Title"})

        def _trickle(self, book_id, seconds):
            """The page in ten pieces spread over ``seconds``: each comes within a read timeout."""
            page = book_page(book_id)
            self.send_response(200)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            pieces = 10
            size = len(page) // pieces + 1
            for start in range(0, len(page), size):
                self.wfile.write(page[start : start + size])
                self.wfile.flush()
                time.sleep(float(seconds or 2) / pieces)

        def _drip(self, book_id, seconds):
            """The page (robots.txt: ``origin.robots_txt``) a byte every ``seconds``, each well
            within any read timeout, the whole taking minutes."""
            body = book_page(book_id) if book_id else (origin.robots_txt or "User-agent: *\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in range(len(body)):
                self.wfile.write(body[byte : byte + 1])
                self.wfile.flush()
                time.sleep(float(seconds or 1))

        def _truncated(self, book_id, _):
            page = book_page(book_id)
            self.send_response(200)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page[: len(page) // 2])
            self.close_connection = True

        def _stall(self, book_id, seconds):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"<html>")
            self.wfile.flush()
            time.sleep(float(seconds or 10))
            self.close_connection = True

        def _reset(self, book_id, _):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def _huge(self, book_id, megabytes):
            size = int(megabytes or 20) * 1024 * 1024
            self.send_response(200)
            self.end_headers()  # no Content-Length: the size shows only while reading
            chunk = b"<p>" + b"x" * 65533
            try:
                for _ in range(size // len(chunk)):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

    return Handler


# The steps ``Origin.behave`` accepts besides HTTP statuses: the handler's ``_name`` methods
# but its two helpers.
BEHAVIOURS = frozenset(
    name[1:] for name in vars(_handler(None)) if name.startswith("_") and not name.startswith("__")
) - {"send", "status"}


def main(argv: list[str]) -> int:
    """Serve the sample origin; run ``argv``'s command against it, if any."""
    import os
    import subprocess

    port = 8081
    if argv[:1] == ["--port"]:
        port, argv = int(argv[1]), argv[2:]
    origin = Origin(port=port)
    origin.behave(MISSING_BOOK, "404")
    origin.start()
    print(
        f"sample origin on {origin.url} (every /book/show/<id> is a made-up book, but {MISSING_BOOK}: HTTP 404)",
        flush=True,
    )
    try:
        if argv:
            rate = os.environ.get("FETCH_RATE") or DEMO_FETCH_RATE
            return subprocess.call(argv, env={**os.environ, "GOODREADS_BASE_URL": origin.url, "FETCH_RATE": rate})
        origin.thread.join()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        origin.stop()


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
