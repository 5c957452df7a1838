"""Goodreads book links: text in, a book id or the reason it was refused out.

Pure: no I/O. Both endpoints and the worker's URL builder go through here, so a
book is recognised the same way whatever form its link comes in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NewType

BookId = NewType("BookId", str)

MAX_LINK_LENGTH = 2048
CANONICAL_ORIGIN = "https://www.goodreads.com"
GOODREADS_HOSTS = frozenset({"goodreads.com", "www.goodreads.com", "m.goodreads.com"})

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# An optional locale segment (en, fr, zh-TW), /book/show/<id>, an optional slug
# (".The_Hobbit", "-the-hobbit"), an optional trailing slash.
_BOOK_PATH = re.compile(r"(?:/[a-z]{2,3}(?:[-_][A-Za-z]{2,4})?)?/book/show/(?P<id>[^/.\-_]+)(?:[.\-_][^/]*)?/?")
_DIGITS = re.compile(r"[0-9]{1,12}")
_BAD_CHARACTERS = re.compile(r"[\x00-\x20\x7f-\x9f\\]")


@dataclass(frozen=True)
class Refusal:
    """Why a link was not accepted, in words a user can act on."""

    reason: str


def parse_link(value: object) -> BookId | Refusal:
    """Return the Goodreads book id a link names, or a Refusal saying why not.

    Accepts http(s) links on goodreads.com, www. and m., with or without the
    scheme, an optional locale segment, a slug after the id, a trailing slash,
    any query or fragment, and surrounding whitespace.
    """
    if not isinstance(value, str):
        return Refusal(f"a link must be a string, not {_json_type(value)}")
    text = value.strip()
    if not text:
        return Refusal("the link is empty")
    if len(text) > MAX_LINK_LENGTH:
        return Refusal(f"the link is longer than {MAX_LINK_LENGTH} characters")
    if _BAD_CHARACTERS.search(text):
        return Refusal("the link contains spaces, control characters or backslashes")

    scheme = _SCHEME.match(text)
    if scheme:
        name = scheme.group(1).lower()
        if name not in ("http", "https"):
            return Refusal(f"the scheme {name!r} is not http or https")
        rest = text[scheme.end() :]
        if not rest.startswith("//"):
            return Refusal("the link has no host after its scheme")
        rest = rest[2:]
    else:
        rest = text

    authority, path = _split_authority(rest)
    if "@" in authority:
        return Refusal("a link with user information is not accepted")
    if ":" in authority:
        return Refusal("a link with an explicit port is not accepted")
    host = authority.lower()
    if host not in GOODREADS_HOSTS:
        return Refusal(f"{authority!r} is not a Goodreads host")

    return parse_book_path(path)


def parse_book_path(path: str) -> BookId | Refusal:
    """The book id in a Goodreads book path such as ``/en/book/show/5907-the-hobbit``."""
    match = _BOOK_PATH.fullmatch(path)
    if not match:
        return Refusal("not a Goodreads book link: the path must be /book/show/<id>")
    raw_id = match.group("id")
    if not _DIGITS.fullmatch(raw_id) or int(raw_id) == 0:
        return Refusal(f"the book id {raw_id[:40]!r} is not a positive number of at most 12 digits")
    return BookId(str(int(raw_id)))


def canonical_url(book_id: BookId, origin: str = CANONICAL_ORIGIN) -> str:
    """The one link that names a book: ``<origin>/book/show/<id>``."""
    return f"{origin}/book/show/{book_id}"


def _split_authority(rest: str) -> tuple[str, str]:
    """Split ``host/path?query#fragment`` into the host part and the bare path."""
    end = len(rest)
    for mark in "/?#":
        position = rest.find(mark)
        if position != -1:
            end = min(end, position)
    authority, remainder = rest[:end], rest[end:]
    for mark in "?#":
        position = remainder.find(mark)
        if position != -1:
            remainder = remainder[:position]
    return authority, remainder


def _json_type(value: object) -> str:
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "an array",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)
