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
    """A cell: lists joined with "; ", contributors as "Name (Role)", series as "Name #2 (series 9)",
    awards as "Hugo Award for Best Novel (1966, won)", the rating distribution as
    "5: 10; 4: 3; 3: 0; 2: 1; 1: 0", null as empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_item_text(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{stars}: {count}" for stars, count in value.items())
    return str(value)


def _item_text(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    if "role" in item:
        return f"{item['name']} ({item['role']})"
    if "series_id" in item:
        name = f"{item['name']} #{item['position']}" if item["position"] else item["name"]
        return f"{name} (series {item['series_id']})" if item["series_id"] else name
    if "outcome" in item:
        award = f"{item['name']} for {item['category']}" if item["category"] else item["name"]
        details = ", ".join(str(part) for part in (item["year"], item["outcome"]) if part is not None)
        return f"{award} ({details})" if details else award
    return str(item)


def _csv_line(cells: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
