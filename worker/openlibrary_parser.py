"""Open Library's JSON into a book's record: pure, no I/O (worker/openlibrary.py fetches).

Open Library is the second source: what it knows of a book Goodreads would not serve. Its
answers are someone else's data, so every value is taken only if it has the expected type, and
every key that becomes a URL is an OLID checked against ``OL<digits><M|W|A>``. The record has
the shape of a Goodreads one (books/record.py): the fields only Goodreads has (ratings,
genres, awards, series, characters, places, its work id) stay ``null`` or ``[]``.

Which value comes from where: the edition (``/books/<OLID>.json``, found by the book's ISBN-13
or among the search's editions) gives what is the edition's own (ISBNs, pages, publisher,
publication date, format, language); the search's work (``/search.json?q=id_goodreads:<id>``)
gives the title, the authors, the first publication year, and the pages (the median of its
editions) when no edition is known; the work (``/works/<OLID>.json``) gives the description
(else the edition's) and the first publication date.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from books.links import BookId, canonical_url
from books.record import PageRecord

OLID_PATTERN = re.compile(r"OL[1-9]\d{0,11}[MWA]")
ISBN13_PATTERN = re.compile(r"97[89]\d{10}")
COVER_URL = "https://covers.openlibrary.org/b/id/{}-L.jpg"
# The fields a search asks for (Open Library answers only those).
SEARCH_FIELDS = (
    "key,title,author_name,isbn,number_of_pages_median,first_publish_year,cover_i,edition_key,publisher,language"
)
Json = dict[str, Any]


@dataclass(frozen=True)
class Finds:
    """What Open Library answered about one book: the search's work document, the edition, the
    work, and the names of the edition's authors (when the search gave none)."""

    doc: Json | None = None
    edition: Json | None = None
    work: Json | None = None
    author_names: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.doc is not None or self.edition is not None


def load_json(body: bytes) -> Json | None:
    """The JSON object in ``body``; None for anything else (not JSON, not an object)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def olid(key: object, kind: str) -> str | None:
    """The OLID of kind ``kind`` (M: edition, W: work, A: author) in a key such as
    ``/works/OL45804W`` or a bare ``OL45804W``; None if there is none."""
    if not isinstance(key, str):
        return None
    tail = key.rstrip("/").rsplit("/", 1)[-1]
    return tail if OLID_PATTERN.fullmatch(tail) and tail.endswith(kind) else None


def valid_isbn13(text: str) -> str | None:
    """``text`` if it is an ISBN-13 whose check digit holds, else None."""
    if not ISBN13_PATTERN.fullmatch(text):
        return None
    total = sum(int(digit) * (3 if n % 2 else 1) for n, digit in enumerate(text[:12]))
    return text if (10 - total % 10) % 10 == int(text[12]) else None


def search_doc(answer: Json | None, book_id: BookId) -> Json | None:
    """The work a search by Goodreads id found: its first document with a work key, unless the
    document lists Goodreads ids without this one."""
    docs = answer.get("docs") if answer else None
    for doc in docs if isinstance(docs, list) else []:
        if not isinstance(doc, dict) or olid(doc.get("key"), "W") is None:
            continue
        ids = doc.get("id_goodreads")
        if isinstance(ids, list) and book_id not in ids:
            continue
        return doc
    return None


def edition_is_the_book(edition: Json | None, book_id: BookId, isbn13: str | None) -> bool:
    """The edition carries this Goodreads id, or the ISBN-13 the book's hints give."""
    if edition is None or olid(edition.get("key"), "M") is None:
        return False
    identifiers = edition.get("identifiers")
    goodreads = identifiers.get("goodreads") if isinstance(identifiers, dict) else None
    return (isinstance(goodreads, list) and book_id in goodreads) or (
        isbn13 is not None and isbn13 in _strings(edition.get("isbn_13"))
    )


def work_key(finds: Finds) -> str | None:
    """The work's OLID: the edition's first work, else the search's."""
    works = finds.edition.get("works") if finds.edition else None
    first = works[0] if isinstance(works, list) and works and isinstance(works[0], dict) else {}
    return olid(first.get("key"), "W") or (olid(finds.doc.get("key"), "W") if finds.doc else None)


def author_keys(edition: Json | None, most: int) -> list[str]:
    """The OLIDs of the edition's authors, at most ``most``."""
    authors = edition.get("authors") if edition else None
    keys = [olid(a.get("key"), "A") for a in authors if isinstance(a, dict)] if isinstance(authors, list) else []
    return [key for key in keys if key][:most]


def author_name(author: Json | None) -> str | None:
    return _text(author.get("name")) if author else None


def build_record(book_id: BookId, finds: Finds) -> PageRecord:
    """The record of what Open Library knows of the book, every key present."""
    doc, edition, work = finds.doc or {}, finds.edition or {}, finds.work or {}
    authors = _strings(doc.get("author_name")) or finds.author_names
    year = doc.get("first_publish_year")
    cover = _first_int(doc.get("cover_i")) or _first_int(edition.get("covers")) or _first_int(work.get("covers"))
    languages = edition.get("languages")
    language = (
        olid_tail(languages[0].get("key"))
        if isinstance(languages, list) and languages and isinstance(languages[0], dict)
        else _only(doc.get("language"))
    )
    return PageRecord(
        book_id=book_id,
        url=canonical_url(book_id),
        title=_text(edition.get("title")) or _text(doc.get("title")) or _text(work.get("title")),
        original_title=None,
        series=None,
        series_list=[],
        author=authors[0] if authors else None,
        authors=authors,
        contributors=[{"name": name, "role": "Author"} for name in authors],
        rating=None,
        ratings_count=None,
        rating_distribution=None,
        reviews_count=None,
        description=_text(work.get("description")) or _text(edition.get("description")),
        isbn=_first(edition.get("isbn_10")),
        isbn13=_first(edition.get("isbn_13")),
        asin=None,
        pages=_first_int(edition.get("number_of_pages")) or _first_int(doc.get("number_of_pages_median")),
        format=_text(edition.get("physical_format")),
        language=language,
        publisher=_first(edition.get("publishers")) or _only(doc.get("publisher")),
        published=_text(edition.get("publish_date")),
        published_date=None,
        first_published=_text(work.get("first_publish_date")) or (str(year) if _first_int(year) else None),
        first_published_date=None,
        work_id=None,
        editions_count=None,
        genres=[],
        characters=[],
        places=[],
        awards=[],
        cover_url=COVER_URL.format(cover) if cover else None,
    )


def olid_tail(key: object) -> str | None:
    """The last part of a key such as ``/languages/eng``."""
    if not isinstance(key, str):
        return None
    return key.rstrip("/").rsplit("/", 1)[-1] or None


def _text(value: object) -> str | None:
    """A string, or a ``{"type": "/type/text", "value": ...}``, as plain text with one kind of
    line break; None when there is none."""
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str):
        return None
    return value.replace("\r\n", "\n").replace("\r", "\n").strip() or None


def _strings(value: object) -> list[str]:
    return [text for item in value if (text := _text(item))] if isinstance(value, list) else []


def _first(value: object) -> str | None:
    strings = _strings(value)
    return strings[0] if strings else None


def _only(value: object) -> str | None:
    """The one string of a list that holds exactly one: a work's many publishers or languages
    say nothing of this edition."""
    strings = _strings(value)
    return strings[0] if len(strings) == 1 else None


def _first_int(value: object) -> int | None:
    """A positive int, or the first of a list of them (Open Library marks a missing cover -1)."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value if type(value) is int and value > 0 else None
