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

# A link's parts in one match (every part is optional, so any text matches): the scheme and
# the "//" that must follow it, the authority (the host, and any user information or port,
# which are refused), and the path without any query or fragment.
_LINK_PARTS = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.\-]*):(//)?)?([^/?#]*)([^?#]*)")
# An optional locale segment (en, fr, zh-TW), /book/show/<id>, an optional slug
# (".The_Hobbit", "-the-hobbit"), an optional trailing slash.
_BOOK_PATH = re.compile(r"(?:/[a-z]{2,3}(?:[-_][A-Za-z]{2,4})?)?/book/show/(?P<id>[^/.\-_]+)(?:[.\-_][^/]*)?/?")
_DIGITS = re.compile(r"[0-9]{1,12}")
_BAD_CHARACTERS = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_GOOD = r"[^\x00-\x20\x7f-\x9f\\"  # a character _BAD_CHARACTERS allows (a class left open)


def _any_case(text: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in text)


# What parse_link accepts, as one regular expression for app/openapi.json (JSON Schema
# patterns are ECMA-262: no flags, no lookarounds; tests/test_openapi.py holds the two to
# each other): surrounding spaces, the scheme and host in any case, a locale, an id of 1 to 12
# digits that is not 0, a slug, a trailing slash, any query and fragment.
LINK_PATTERN = (
    rf"^\s*(?:{_any_case('http')}[Ss]?://)?(?:{_any_case('www.')}|{_any_case('m.')})?{_any_case('goodreads.com')}"
    r"(?:/[a-z]{2,3}(?:[-_][A-Za-z]{2,4})?)?/book/show/"
    + "(?:"
    + "|".join(f"0{{{zeros}}}[1-9][0-9]{{0,{11 - zeros}}}" for zeros in range(12))
    + ")"
    + rf"(?:[._-]{_GOOD}/?#]*)?/?(?:\?{_GOOD}#]*)?(?:#{_GOOD}]*)?\s*$"
)


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

    scheme, slashes, authority, path = _LINK_PARTS.match(text).groups()  # type: ignore[union-attr]
    if scheme is not None:
        if scheme.lower() not in ("http", "https"):
            return Refusal(f"the scheme {scheme.lower()!r} is not http or https")
        if slashes is None:
            return Refusal("the link has no host after its scheme")
    if "@" in authority:
        return Refusal("a link with user information is not accepted")
    if ":" in authority:
        return Refusal("a link with an explicit port is not accepted")
    if authority.lower() not in GOODREADS_HOSTS:
        return Refusal(f"{authority!r} is not a Goodreads host")

    return parse_book_path(path)


def parse_book_path(path: str) -> BookId | Refusal:
    """The book id in a Goodreads book path such as ``/en/book/show/5907-the-hobbit``."""
    match = _BOOK_PATH.fullmatch(path)
    if not match:
        return Refusal("not a Goodreads book link: the path must be /book/show/<id>")
    return parse_book_id(match.group("id"))


def parse_book_id(raw_id: str) -> BookId | Refusal:
    """A Goodreads book id as written in a link or an export's ``Book Id`` column: a positive
    number of at most 12 digits, leading zeros dropped."""
    if not _DIGITS.fullmatch(raw_id) or int(raw_id) == 0:
        return Refusal(f"the book id {raw_id[:40]!r} is not a positive number of at most 12 digits")
    return BookId(str(int(raw_id)))


def canonical_url(book_id: BookId, origin: str = CANONICAL_ORIGIN) -> str:
    """The one link that names a book: ``<origin>/book/show/<id>``."""
    return f"{origin}/book/show/{book_id}"


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
