"""Hints: what an import says of a book, kept per book for a second source to match on."""

from __future__ import annotations

from books.hints import MAX_HINT_CHARS, BookHints, Hints
from books.links import BookId


def test_hints_are_kept_per_book_and_replaced_by_a_later_import(redis):
    hints = Hints(redis, "t", ttl=100)
    hints.save({BookId("1"): BookHints(title="Dune", author="Frank Herbert", isbn13="9780441172719")})
    assert hints.load(BookId("1")) == BookHints("Dune", "Frank Herbert", "9780441172719")
    hints.save({BookId("1"): BookHints(title="Dune Messiah")})
    assert hints.load(BookId("1")) == BookHints(title="Dune Messiah")
    assert 0 < redis.ttl("t:hints:1") <= 100


def test_a_book_without_hints_has_none_and_empty_hints_write_nothing(redis):
    hints = Hints(redis, "t", ttl=100)
    hints.save({BookId("2"): BookHints()})
    assert hints.load(BookId("2")) is None
    assert redis.exists("t:hints:2") == 0


def test_long_values_are_cut(redis):
    hints = Hints(redis, "t", ttl=100)
    hints.save({BookId("3"): BookHints(title="x" * 10_000)})
    loaded = hints.load(BookId("3"))
    assert loaded is not None and len(loaded.title) == MAX_HINT_CHARS
