"""What reading one stored record costs: the check that it is plain JSON data, and the whole read.

    pipenv run python bench/record_read.py [--rounds 7] [--reads 2000]

Over the real pages' records in ../shared/goodreads-pages/ (when present) and the fixture
page's record: the median time of ``plain_record`` (the service's check) and of
``loads_record`` on a record as stored (zlib-compressed) and on one stored before records
were compressed (a bare pickle), and of a record's line in an export (read, then written as
JSON Lines by ``books.export``). CPU time, so that other work on the machine weighs less.

Baseline, in the same run and alternating with it round by round: the check as it was before,
``copying_walk`` below (a copy of the record built node by node, one method call per value),
after the same unpickler on the bare pickle, as records were read before. Both must accept every record and give back
equal values, or the script stops.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from books.export import export_lines
from books.links import BookId
from books.store import PlainValuesUnpickler, RecordLimits, UnsafeRecord, dumps_record, loads_record, plain_record
from tests.origin import book_page
from worker.parser import NotABookPage, parse_book_page

PAGES = Path(__file__).resolve().parents[2] / "shared" / "goodreads-pages" / "pages"
FETCHED_AT = "2026-07-01T00:00:00+00:00"


def copying_walk(value: Any) -> Any:
    """The check before: the same refusals, paid for value by value while building a copy."""
    limits = RecordLimits()
    left = limits.max_bytes

    def spend(size: int) -> None:
        nonlocal left
        left -= size
        if left < 0:
            raise UnsafeRecord("the record is bigger than MAX_RECORD_BYTES as JSON")

    def text(item: str) -> str:
        spend(len(item) + 2)
        if item.isascii():
            return item
        try:
            item.encode("utf-8")
            return item
        except UnicodeEncodeError:
            return item.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    def key(item: object) -> str:
        if type(item) is not str:
            raise UnsafeRecord(f"a {type(item).__name__} key is not plain JSON data")
        spend(2)
        return text(item)

    def copy(item: Any, depth: int) -> Any:
        kind = type(item)
        if kind is str:
            return text(item)
        if item is None or kind is bool:
            spend(5)
            return item
        if kind is int:
            if not -(2**63) <= item < 2**63:
                raise UnsafeRecord("an integer beyond 64 bits")
            spend(len(repr(item)))
            return item
        if kind is float:
            if not math.isfinite(item):
                raise UnsafeRecord(f"{item} is not a JSON number")
            spend(len(repr(item)))
            return item
        if kind is list or kind is dict:
            if depth > limits.max_depth:
                raise UnsafeRecord(f"nested deeper than {limits.max_depth} levels")
            spend(2)
            if kind is dict:
                return {key(k): copy(v, depth + 1) for k, v in item.items()}
            items = []
            for element in item:
                spend(1)
                items.append(copy(element, depth + 1))
            return items
        raise UnsafeRecord(f"a {kind.__name__} is not plain JSON data")

    if type(value) is not dict:
        raise UnsafeRecord(f"a record is a dict, not {type(value).__name__}")
    return copy(value, 1)


def records() -> dict[str, list[dict]]:
    """The real pages' records (when the folder is there) and the fixture page's."""
    real = []
    for page in sorted(PAGES.glob("*.html")) if PAGES.exists() else []:
        record = parse_book_page(page.read_bytes())
        if not isinstance(record, NotABookPage):
            real.append({**record, "fetched_at": FETCHED_AT})
    fixture = parse_book_page(book_page("4242"), BookId("4242"))
    assert not isinstance(fixture, NotABookPage)
    return {**({"real pages": real} if real else {}), "fixture": [{**fixture, "fetched_at": FETCHED_AT}]}


def per_call_us(action: Callable[[Any], object], inputs: list[Any], reads: int) -> float:
    """CPU microseconds per call of ``action`` over ``inputs``, cycled ``reads`` times in all."""
    rounds = max(1, reads // len(inputs))
    started = time.process_time()  # CPU time: other work on the machine does not count
    for _ in range(rounds):
        for item in inputs:
            action(item)
    return (time.process_time() - started) / (rounds * len(inputs)) * 1e6


def export_line(record: dict) -> str:
    """The record's line of a JSON Lines export, as ``books.export`` writes it."""
    return next(export_lines([record], "jsonl"))


def bare_pickle(record: dict) -> bytes:
    """The record as stored before compression: the same pickle, not compressed."""
    import pickle

    return pickle.dumps(plain_record(record), protocol=pickle.HIGHEST_PROTOCOL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    for name, values in records().items():
        stored = [dumps_record(record) for record in values]
        legacy = [bare_pickle(record) for record in values]
        unpickled = [PlainValuesUnpickler(data).load() for data in legacy]
        for value in unpickled:
            if plain_record(value) != copying_walk(value):
                raise SystemExit("the check and the baseline disagree on a record")
        cases: dict[str, tuple[Callable[[Any], object], list[Any]]] = {
            "check, before (copying_walk)": (copying_walk, unpickled),
            "check, now (plain_record)": (plain_record, unpickled),
            "read, before (unpickle + copying_walk)": (lambda d: copying_walk(PlainValuesUnpickler(d).load()), legacy),
            "read, now (loads_record, compressed)": (loads_record, stored),
            "read, now (loads_record, bare pickle)": (loads_record, legacy),
            "export line, before": (lambda d: export_line(copying_walk(PlainValuesUnpickler(d).load())), legacy),
            "export line, now": (lambda d: export_line(loads_record(d)), stored),
        }
        times: dict[str, list[float]] = {case: [] for case in cases}
        for _ in range(args.rounds):
            for case, (action, inputs) in cases.items():
                times[case].append(per_call_us(action, inputs, args.reads))
        medians = {case: statistics.median(values) for case, values in times.items()}
        print(f"{name}: {len(values)} records, median of {args.rounds} rounds of {args.reads} reads")
        for case, median in medians.items():
            print(f"  {case:42} {median:7.1f} µs")
        check = medians["check, before (copying_walk)"] / medians["check, now (plain_record)"]
        read = medians["read, before (unpickle + copying_walk)"] / medians["read, now (loads_record, compressed)"]
        line = medians["export line, before"] / medians["export line, now"]
        print(f"  the check {check:.1f}× faster; a whole read {read:.1f}× faster; an export line {line:.1f}× faster")


if __name__ == "__main__":
    main()
