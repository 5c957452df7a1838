"""Lists of books as users keep them: one link per line, or Goodreads' "Export Library" CSV.

Pure: a request's bytes in, one ``Submitted`` per link or row out; no I/O. The readers are
generators, so the web side can stop reading past ``MAX_LINKS_PER_REQUEST`` without judging
every line of an oversized body first.

An export (My Books → Import and export → Export library) is UTF-8, with or without a BOM,
CRLF or LF; its header names ``Book Id``, ``Title``, ``Author``, ``ISBN``, ``ISBN13`` and
twenty more columns. Titles and reviews with commas, quotes and line breaks are quoted, and the
ISBNs are written as spreadsheet formulas, ``="9780441172719"`` (``=""`` when missing), a cell
the CSV itself quotes once more (its quotes doubled). Only ``Book Id`` is required; ``Title``,
``Author`` and ``ISBN13`` become the book's hints (books/hints.py).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from books.hints import BookHints
from books.links import BookId, Refusal, parse_book_id, parse_link

BOOK_ID_COLUMN = "Book Id"
# The hints' fields and the export's columns they come from.
HINT_COLUMNS = {"title": "Title", "author": "Author", "isbn13": "ISBN13"}
NO_HINTS = BookHints()
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ISBN13 = re.compile(r"[0-9]{13}")


class UnreadableBody(ValueError):
    """The body as a whole cannot be read as links: an error code and a reason a user can act on."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Submitted:
    """One link of a request: as sent (a JSON array's item, which may be any JSON value, a line,
    or an export row's ``Book Id`` cell), the book it names or why not, the line it starts on
    (lines and rows, counted from 1), and what the row says of the book."""

    link: object
    book: BookId | Refusal
    line: int | None = None
    hints: BookHints = NO_HINTS


def link_lines(data: bytes) -> Iterator[Submitted]:
    """One link per line (LF, CRLF or CR); blank lines are skipped, not refused."""
    for number, line in enumerate(_LINE_BREAK.split(_text(data)), 1):
        if line.strip():
            yield Submitted(line, parse_link(line), number)


def export_rows(data: bytes) -> Iterator[Submitted]:
    """One book per row of a Goodreads library export, numbered by the line the row starts on
    (a quoted review may span lines); blank rows are skipped, a row without a usable ``Book Id``
    is refused with its line. ``UnreadableBody`` when the file is not UTF-8 CSV with a
    ``Book Id`` column."""
    reader = csv.reader(io.StringIO(_text(data), newline=""), strict=True)
    try:
        header = next((row for row in reader if _holds_text(row)), None)
        if header is None:
            raise UnreadableBody("no_links", "the CSV is empty: send a Goodreads library export")
        columns = _columns(header)
        if BOOK_ID_COLUMN.lower() not in columns:
            raise UnreadableBody(
                "no_book_id_column",
                f"the CSV has no {BOOK_ID_COLUMN!r} column: send the file Goodreads exports "
                "(My Books, Import and export, Export library)",
            )
        id_column = columns[BOOK_ID_COLUMN.lower()]
        hint_columns = {name: columns.get(column.lower()) for name, column in HINT_COLUMNS.items()}
        starts = reader.line_num + 1
        for row in reader:
            number, starts = starts, reader.line_num + 1
            if _holds_text(row):
                cell = _cell(row, id_column)
                yield Submitted(cell, _row_book(cell, number), number, _hints(row, hint_columns))
    except csv.Error as error:
        raise UnreadableBody("invalid_csv", f"the CSV cannot be read at line {reader.line_num}: {error}") from None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableBody("invalid_text", "the body is not UTF-8 text") from None


def _holds_text(row: list[str]) -> bool:
    """Whether any cell of the row holds more than spaces (a blank line is a row of none)."""
    return bool("".join(row).strip())


def _columns(header: list[str]) -> dict[str, int]:
    """Each column's position by its name, case and spaces aside; the first of a repeated name."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        columns.setdefault(name.strip().lower(), index)
    return columns


def _cell(row: list[str], index: int | None) -> str:
    """A cell's value, spaces and the ``="..."`` formula around it taken away; "" when the row is short."""
    if index is None or index >= len(row):
        return ""
    value = row[index].strip()
    if value.startswith('="') and value.endswith('"') and len(value) >= 3:
        value = value[2:-1].strip()
    return value


def _row_book(cell: str, line: int) -> BookId | Refusal:
    if not cell:
        return Refusal(f"line {line}: the row has no {BOOK_ID_COLUMN}")
    book = parse_book_id(cell)
    return Refusal(f"line {line}: {book.reason}") if isinstance(book, Refusal) else book


def _hints(row: list[str], columns: dict[str, int | None]) -> BookHints:
    isbn13 = _cell(row, columns["isbn13"]).replace("-", "")
    return BookHints(
        title=_cell(row, columns["title"]),
        author=_cell(row, columns["author"]),
        isbn13=isbn13 if _ISBN13.fullmatch(isbn13) else "",
    )
