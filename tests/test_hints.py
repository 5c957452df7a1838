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


def test_books_past_one_script_call_are_all_kept_each_with_its_own_fields(redis):
    hints = Hints(redis, "t", ttl=100)
    books = {BookId(str(n)): BookHints(title=f"T{n}", isbn13="9780441172719" if n % 2 else "") for n in range(2_500)}
    books[BookId("7")] = BookHints()  # nothing to keep, between books that have
    hints.save(books)
    assert [hints.load(BookId(str(n))) for n in (0, 1, 999, 1000, 2499)] == [
        BookHints(title="T0"),
        BookHints(title="T1", isbn13="9780441172719"),
        BookHints(title="T999", isbn13="9780441172719"),
        BookHints(title="T1000"),
        BookHints(title="T2499", isbn13="9780441172719"),
    ]
    assert hints.load(BookId("7")) is None
    assert len(redis.keys("t:hints:*")) == 2_499
    assert all(0 < redis.ttl(key) <= 100 for key in redis.keys("t:hints:*"))
