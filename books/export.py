"""Records as CSV or JSON Lines, one line at a time, for streaming responses.

The records come from ``BookStore.iter_records``, which leaves out (and logs) any record it
refuses, so every record here is plain JSON data and every line can be written.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from books.record import RECORD_FIELDS, StoredRecord

# Media types by format; the response adds "; charset=utf-8" to text/csv itself.
FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
# Lines are sent some 64 KB at a time rather than one by one (a line is about 2 KB): each
# piece is one chunk of the streamed response, a write for the server and a read for the client.
PIECE_CHARS = 64 * 1024
# What a spreadsheet takes a cell starting with for a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def export_lines(records: Iterable[StoredRecord], export_format: str) -> Iterator[str]:
    """Lines of the export; CSV starts with a header row."""
    if export_format == "csv":
        yield _csv_line(RECORD_FIELDS)
        for record in records:
            yield _csv_line([inert(csv_value(record.get(field))) for field in RECORD_FIELDS])
    else:
        for record in records:
            yield json.dumps(record, ensure_ascii=False) + "\n"


def in_pieces(lines: Iterable[str], size: int = PIECE_CHARS) -> Iterator[str]:
    """The lines joined into pieces of at least ``size`` characters, the last one shorter."""
    piece: list[str] = []
    length = 0
    for line in lines:
        piece.append(line)
        length += len(line)
        if length >= size:
            yield "".join(piece)
            piece, length = [], 0
    if piece:
        yield "".join(piece)


def csv_value(value: Any) -> str:
    """A cell: lists joined with "; ", contributors as "Name (Role)", series as "Name #2 (series 9)",
    awards as "Hugo Award for Best Novel (1966, won)", the rating distribution as
    "5: 10; 4: 3; 3: 0; 2: 1; 1: 0", null as empty. A stored record is plain data but need not
    have the usual shape, so a missing key is empty, never an error."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_item_text(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {csv_value(item)}" for key, item in value.items())
    return str(value)


def inert(cell: str) -> str:
    """The cell with a ``'`` before a first character a spreadsheet would read as the start
    of a formula (``=``, ``+``, ``-``, ``@``, a tab or a carriage return): a title or a
    description is the page's text, and the page is not ours."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def _item_text(item: Any) -> str:
    if not isinstance(item, dict):
        return csv_value(item)
    name = csv_value(item.get("name"))
    if "role" in item:
        return f"{name} ({csv_value(item['role'])})"
    if "series_id" in item:
        position, series_id = item.get("position"), item.get("series_id")
        label = f"{name} #{position}" if position else name
        return f"{label} (series {series_id})" if series_id else label
    if "outcome" in item:
        category = item.get("category")
        award = f"{name} for {category}" if category else name
        details = ", ".join(str(part) for part in (item.get("year"), item.get("outcome")) if part is not None)
        return f"{award} ({details})" if details else award
    return json.dumps(item, ensure_ascii=False)


def _csv_line(cells: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
