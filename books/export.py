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

FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def export_lines(records: Iterable[StoredRecord], export_format: str) -> Iterator[str]:
    """Lines of the export; CSV starts with a header row."""
    if export_format == "csv":
        yield _csv_line(RECORD_FIELDS)
        for record in records:
            yield _csv_line([csv_value(record.get(field)) for field in RECORD_FIELDS])
    else:
        for record in records:
            yield json.dumps(record, ensure_ascii=False) + "\n"


def csv_value(value: Any) -> str:
    """A cell: lists joined with "; ", contributors as "Name (Role)", null as empty, any
    other mapping as JSON (a stored record is plain data but need not have the usual shape)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_csv_item(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_item(item: Any) -> str:
    if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("role"), str):
        return f"{item['name']} ({item['role']})"
    return csv_value(item)


def _csv_line(cells: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
