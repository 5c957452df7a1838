"""Reading lists of links and Goodreads library exports: pure functions, no Redis."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from books.hints import BookHints
from books.imports import Submitted, UnreadableBody, export_rows, link_lines
from books.links import Refusal

EXPORT = Path(__file__).parent / "fixtures" / "goodreads_library_export.csv"
HEADER = (
    "Book Id,Title,Author,Author l-f,Additional Authors,ISBN,ISBN13,My Rating,Average Rating,Publisher,Binding,"
    "Number of Pages,Year Published,Original Publication Year,Date Read,Date Added,Bookshelves,"
    "Bookshelves with positions,Exclusive Shelf,My Review,Spoiler,Private Notes,Read Count,Owned Copies"
)


def test_a_real_shaped_export_gives_each_row_its_book_line_and_hints():
    data = EXPORT.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data  # as Goodreads writes it: a BOM, CRLF
    rows = list(export_rows(data))
    assert [(row.line, row.link, row.book) for row in rows] == [
        (2, "44767458", "44767458"),  # its review spans lines 2-3
        (4, "5907", "5907"),
        (5, "18144590", "18144590"),
        (6, "", Refusal("line 6: the row has no Book Id")),
        (7, "13079982", "13079982"),  # lines 7-9
        (10, "n/a", Refusal("line 10: the book id 'n/a' is not a positive number of at most 12 digits")),
        (12, "2767052", "2767052"),  # after a blank line 11, skipped
    ]
    assert rows[0].hints == BookHints("Dune (Dune, #1)", "Frank Herbert", "9780441172719")
    assert rows[1].hints == BookHints("The Hobbit, or There and Back Again", "J.R.R. Tolkien", "9780618260300")
    assert rows[2].hints == BookHints("The Alchemist", "Paulo Coelho", "")  # ISBN13 written ="" (missing)
    assert rows[4].hints == BookHints("霧の町 (Kiri no Machi, #3)", "山田 太郎", "9784063842494")  # ="..." unquoted


def test_lf_without_a_bom_reads_the_same():
    crlf = EXPORT.read_bytes()
    lf = crlf.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    assert list(export_rows(lf)) == list(export_rows(crlf))


def test_only_the_book_id_column_is_needed_in_any_order_and_case():
    data = b"\n title , BOOK ID \nDune,44767458\n,\n  Alone  \n"
    assert list(export_rows(data)) == [
        Submitted("44767458", "44767458", 3, BookHints(title="Dune")),
        Submitted("", Refusal("line 5: the row has no Book Id"), 5, BookHints(title="Alone")),  # a short row
    ]  # the header on line 2, after a blank one; line 4 holds empty cells only: skipped


@pytest.mark.parametrize(
    ("isbn13", "kept"),
    [
        ('"=""9780441172719"""', "9780441172719"),
        ('="9780441172719"', "9780441172719"),
        ("9780441172719", "9780441172719"),
        ("978-0-441-17271-9", "9780441172719"),
        ('"="""""', ""),
        ('="0441172717"', ""),  # ten digits: not an ISBN-13
        ("978044117271X", ""),
    ],
)
def test_the_isbn13_hint_is_the_bare_13_digits(isbn13, kept):
    data = f"Book Id,ISBN13\n1,{isbn13}\n".encode()
    assert [row.hints.isbn13 for row in export_rows(data)] == [kept]


def test_book_ids_follow_the_links_rule():
    data = b'Book Id\n007\n0\n1234567890123\n="42"\n'
    assert [row.book for row in export_rows(data)] == [
        "7",
        Refusal("line 3: the book id '0' is not a positive number of at most 12 digits"),
        Refusal("line 4: the book id '1234567890123' is not a positive number of at most 12 digits"),
        "42",
    ]


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (b"", "no_links", "the CSV is empty"),
        (b"\r\n\r\n", "no_links", "the CSV is empty"),
        (b"Title,Author\nDune,Frank Herbert\n", "no_book_id_column", "the CSV has no 'Book Id' column"),
        (b"Book Id,Title\n1,\xff\xfe\n", "invalid_text", "the body is not UTF-8 text"),
        (b'Book Id,Title\n1,Dune\n2,"never closed\n3,x\n', "invalid_csv", "the CSV cannot be read at line 4"),
        (b'Book Id,Title\n1,"closed"then more\n', "invalid_csv", "the CSV cannot be read at line 2"),
    ],
    ids=["empty", "blank lines", "no Book Id column", "not utf-8", "unterminated quote", "text after a quote"],
)
def test_a_body_that_is_no_export_is_refused_whole(data, code, reason):
    with pytest.raises(UnreadableBody) as refused:
        list(export_rows(data))
    assert refused.value.code == code
    assert refused.value.reason.startswith(reason)


def test_rows_are_read_as_asked_so_a_caller_can_stop_at_its_limit():
    data = f"{HEADER}\n1\n2\n3\n" + '4,"never closed\n'
    assert [row.book for row in islice(export_rows(data.encode()), 2)] == ["1", "2"]


def test_link_lines_number_every_line_and_skip_blank_ones():
    data = "\ufeffhttps://www.goodreads.com/book/show/5907\r\n\r\n  goodreads.com/book/show/1.Dune  \rnot-a-link\n\n"
    data = data.encode()
    assert list(link_lines(data)) == [
        Submitted("https://www.goodreads.com/book/show/5907", "5907", 1),
        Submitted("  goodreads.com/book/show/1.Dune  ", "1", 3),
        Submitted("not-a-link", Refusal("'not-a-link' is not a Goodreads host"), 4),
    ]
    assert list(link_lines(b"\n \n")) == []


def test_link_lines_refuse_a_body_that_is_not_utf8():
    with pytest.raises(UnreadableBody) as refused:
        list(link_lines(b"goodreads.com/book/show/1\n\xff"))
    assert refused.value.code == "invalid_text"
