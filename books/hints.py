"""What a user told the service about a book beside its id: a title, an author, an ISBN-13.

A Goodreads "Export Library" CSV carries them on each row. They are not the book's record
(Goodreads' page is): they are what a second source can match on when Goodreads says no.

Key scheme (``<prefix>`` is ``KEY_PREFIX``): ``<prefix>:hints:<book_id>``, a hash with the
fields ``title``, ``author`` and ``isbn13`` (only those given), expiring after ``BATCH_TTL``
like the batch that brought them. A later import of the same book replaces its hints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import cast

from redis import Redis

from books.links import BookId

# The longest value kept for each field: an export's cells are short; a crafted file's are not.
MAX_HINT_CHARS = 300


@dataclass(frozen=True)
class BookHints:
    title: str = ""
    author: str = ""
    isbn13: str = ""

    def fields(self) -> dict[str, str]:
        """The given fields, each cut to ``MAX_HINT_CHARS``."""
        return {name: value[:MAX_HINT_CHARS] for name, value in asdict(self).items() if value}


class Hints:
    """The hints kept for books, one hash per book."""

    def __init__(self, redis: Redis, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    def key(self, book_id: BookId) -> str:
        return f"{self.prefix}:hints:{book_id}"

    def save(self, hints: Mapping[BookId, BookHints]) -> None:
        """Keep each book's hints (replacing older ones), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for book_id, book_hints in hints.items():
            values = book_hints.fields()
            if not values:
                continue
            key = self.key(book_id)
            pipe.delete(key)
            pipe.hset(key, mapping=values)  # type: ignore[arg-type]
            pipe.expire(key, self.ttl)
        pipe.execute()

    def load(self, book_id: BookId) -> BookHints | None:
        """The book's hints, or None when no import gave any."""
        values = cast(dict[bytes, bytes], self.redis.hgetall(self.key(book_id)))
        if not values:
            return None
        decoded = {name.decode(): value.decode("utf-8", "replace") for name, value in values.items()}
        return BookHints(**{name: decoded.get(name, "") for name in ("title", "author", "isbn13")})
