"""Records as CSV or JSON Lines, one line at a time, for streaming responses."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from books.record import RECORD_FIELDS, StoredRecord

# Media types by format; the response adds "; charset=utf-8" to text/csv itself.
FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


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
    """A cell: lists joined with "; ", contributors as "Name (Role)", null as empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(f"{item['name']} ({item['role']})" if isinstance(item, dict) else str(item) for item in value)
    return str(value)


def _csv_line(cells: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
