"""The record: the one shape of a book's metadata, from the parser to the API and exports.

Every key is always present, ``None`` (or an empty list) where the page has no value.
"""

from __future__ import annotations

from typing import Any, TypedDict, get_origin, get_type_hints


class Contributor(TypedDict):
    name: str
    role: str


class SeriesEntry(TypedDict):
    """One series the book belongs to; ``position`` as the page writes it ("1", "0.5", "1-3")."""

    name: str
    position: str | None
    series_id: str | None


class Award(TypedDict):
    """A literary award; ``outcome`` is "won" or "nominated", None when the page says neither."""

    name: str
    category: str | None
    year: int | None
    outcome: str | None


# How many ratings gave each number of stars, keyed "5" down to "1": named keys because the
# two layouts list the counts in opposite orders.
RatingDistribution = TypedDict("RatingDistribution", {"5": int, "4": int, "3": int, "2": int, "1": int})


class PageRecord(TypedDict):
    """What a book page gives, in the order the API answers it."""

    book_id: str | None
    url: str | None
    title: str | None
    original_title: str | None
    series: str | None
    series_list: list[SeriesEntry]
    author: str | None
    authors: list[str]
    contributors: list[Contributor]
    rating: float | None
    ratings_count: int | None
    rating_distribution: RatingDistribution | None
    reviews_count: int | None
    description: str | None
    isbn: str | None
    isbn13: str | None
    asin: str | None
    pages: int | None
    format: str | None
    language: str | None
    publisher: str | None
    published: str | None
    published_date: str | None
    first_published: str | None
    first_published_date: str | None
    work_id: str | None
    editions_count: int | None
    genres: list[str]
    characters: list[str]
    places: list[str]
    awards: list[Award]
    cover_url: str | None


class Record(PageRecord):
    """A stored book: the page's values, when the page was fetched (ISO 8601, UTC), and where
    from: ``goodreads``, or ``openlibrary`` when Goodreads said no (worker/openlibrary.py)."""

    fetched_at: str
    source: str


# Where a record came from; records written before the field existed came from Goodreads.
GOODREADS = "goodreads"
OPENLIBRARY = "openlibrary"
SOURCES = (GOODREADS, OPENLIBRARY)

PAGE_FIELDS: tuple[str, ...] = tuple(get_type_hints(PageRecord))
RECORD_FIELDS: tuple[str, ...] = tuple(get_type_hints(Record))
# What a record stored before a field existed answers for it: the value of a page without it
# (an empty list, or None), and Goodreads as its source.
MISSING_VALUES: dict[str, Any] = {
    name: [] if get_origin(kind) is list else None for name, kind in get_type_hints(PageRecord).items()
} | {"source": GOODREADS}

# Records read back from Redis are checked only for being plain data, so readers take
# them as plain mappings.
StoredRecord = dict[str, Any]
