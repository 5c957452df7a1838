"""A local stand-in for openlibrary.org serving the recorded answers in tests/fixtures/openlibrary.

``/books/``, ``/works/`` and ``/authors/<OLID>.json`` serve the file of that name (404 without
one); ``/isbn/<isbn>.json`` redirects, as Open Library does, to the edition carrying that ISBN;
``/search.json?q=id_goodreads:<id>`` serves ``search_id_goodreads_<id>.json``, or the empty
result Open Library gives when nothing matches (``searches[<id>]``: a test's own answer instead).
``robots_txt`` is served at ``/robots.txt`` (404 while None). ``answer_all_with = 503`` (or any
status) answers every other request with it, as an Open Library in trouble would. Every request
is recorded with its User-Agent.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.local_server import LocalServer

FIXTURES = Path(__file__).parent / "fixtures" / "openlibrary"
_RECORD = re.compile(r"^/(books|works|authors)/(OL\d+[MWA])\.json$")
_ISBN = re.compile(r"^/isbn/(\d{9}[\dX]|\d{13})\.json$")
EMPTY_SEARCH = {"numFound": 0, "start": 0, "numFoundExact": True, "docs": []}


def isbn_index() -> dict[str, str]:
    """Every ISBN the recorded editions carry, to its edition's OLID."""
    index = {}
    for path in FIXTURES.glob("books_*.json"):
        edition = json.loads(path.read_text())
        for isbn in edition.get("isbn_10", []) + edition.get("isbn_13", []):
            index[isbn] = path.stem.removeprefix("books_")
    return index


@dataclass(frozen=True)
class Request:
    path: str
    user_agent: str


class FakeOpenLibrary(LocalServer):
    def __init__(self) -> None:
        self.robots_txt: str | None = None
        self.answer_all_with: int | None = None
        self.searches: dict[str, dict] = {}  # a test's own search answer, by Goodreads id
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.isbns = isbn_index()
        super().__init__(_handler(self))

    def paths(self, robots: bool = False) -> list[str]:
        """The paths asked for, robots.txt's only if ``robots``."""
        with self.lock:
            return [r.path for r in self.requests if robots or r.path != "/robots.txt"]

    def answer(self, target: str) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and headers for a request target."""
        parts = urlsplit(target)
        if parts.path == "/robots.txt":
            return (404, b"", {}) if self.robots_txt is None else (200, self.robots_txt.encode(), {})
        if self.answer_all_with:
            return self.answer_all_with, b'{"error": "unavailable"}', {"Retry-After": "1"}
        if parts.path == "/search.json":
            query = parse_qs(parts.query).get("q", [""])[0]
            if own := self.searches.get(query.removeprefix("id_goodreads:")):
                return 200, json.dumps(own).encode(), {}
            file = FIXTURES / f"search_{query.replace(':', '_')}.json"
            if re.fullmatch(r"id_goodreads:\d+", query) and file.exists():
                return 200, file.read_bytes(), {}
            return 200, json.dumps(EMPTY_SEARCH).encode(), {}
        if match := _ISBN.match(parts.path):
            edition = self.isbns.get(match.group(1))
            return (302, b"", {"Location": f"/books/{edition}.json"}) if edition else (404, b"{}", {})
        if match := _RECORD.match(parts.path):
            file = FIXTURES / f"{match.group(1)}_{match.group(2)}.json"
            if file.exists():
                return 200, file.read_bytes(), {}
        return 404, b'{"error": "notfound"}', {}


def _handler(fake: FakeOpenLibrary):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            with fake.lock:
                fake.requests.append(Request(urlsplit(self.path).path, self.headers.get("User-Agent", "")))
            status, body, headers = fake.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler
