"""Record storage on a real Redis (a zlib-compressed pickle, records stored before as a bare
pickle still read), the bounded decompression, the unpickler that refuses anything but plain
values, and the checks that keep every record plain JSON data within its limits, written or read."""

from __future__ import annotations

import json
import logging
import os
import pickle
import tracemalloc
import zlib

import pytest

from books.record import MISSING_VALUES
from books.status import BookStatus
from books.store import BookStore, RecordLimits, UnsafeRecord, dumps_record, loads_record, plain_record

RECORD = {
    "book_id": "7",
    "title": "T",
    "authors": ["A", "B"],
    "rating": 4.5,
    "pages": None,
    "contributors": [{"name": "A", "role": "Author"}],
    "ratings_count": 10**12,
    "flag": True,
}


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pwned-by-pickle",))


def test_a_record_round_trips_through_redis(redis):
    store = BookStore(redis, "goodreads")
    store.save_record("7", RECORD)
    assert store.load_record("7") == {**MISSING_VALUES, **RECORD}
    assert redis.type("goodreads:book:7") == b"string"
    outcome = redis.hgetall("goodreads:status:7")
    assert outcome[b"state"] == b"stored" and float(outcome[b"stored_at"]) > 0


def test_a_record_is_stored_as_a_compressed_pickle_that_reads_by_hand(redis):
    BookStore(redis).save_record("7", RECORD)
    value = redis.get("goodreads:book:7")
    assert value[:1] == b"\x78"
    assert pickle.loads(zlib.decompress(value)) == RECORD


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_a_record_stored_before_compression_still_reads(redis, protocol):
    store = BookStore(redis)
    legacy = pickle.dumps(RECORD, protocol=protocol)
    assert legacy[:1] == b"\x80"
    redis.set("goodreads:book:7", legacy)
    store.save_record("8", RECORD)
    # Written before records said where they came from, or had every field: Goodreads', with
    # what a page without those fields gives.
    read = {**MISSING_VALUES, **RECORD}
    assert store.load_record("7") == read
    assert list(store.iter_records(["7", "8"])) == [read, read]


COMPRESSED = zlib.compress(pickle.dumps(RECORD))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x78\x9cnot a deflate stream", "a broken zlib stream"),
        (b"\x78", "a broken zlib stream|truncated"),
        (COMPRESSED[:-6], "truncated"),
        (COMPRESSED + b"more", "bytes after its end"),
        (zlib.compress(pickle.dumps(RunsCode())), "refused to load"),
        (zlib.compress(b"not a pickle at all"), None),
        (zlib.compress(pickle.dumps({"rating": float("nan")})), "nan is not a JSON number"),
    ],
    ids=["not deflate", "a lone header byte", "truncated", "trailing bytes", "code", "not a pickle", "nan"],
)
def test_a_broken_or_hostile_compressed_record_is_refused(redis, payload, reason):
    if os.path.exists("/tmp/pwned-by-pickle"):
        os.remove("/tmp/pwned-by-pickle")
    redis.set("goodreads:book:9", payload)
    with pytest.raises(UnsafeRecord, match=reason):
        BookStore(redis).load_record("9")
    assert not os.path.exists("/tmp/pwned-by-pickle")


def test_a_zlib_bomb_is_refused_without_expanding_it():
    """48 MB of zeros in 48 KB of stream: refused having expanded no more than MAX_RECORD_BYTES."""
    limits = RecordLimits(max_bytes=64 * 1024, max_depth=16)
    compressor = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    bomb = b"".join(compressor.compress(zeros) for _ in range(48)) + compressor.flush()
    assert len(bomb) < limits.max_bytes
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeRecord, match="expands to more than MAX_RECORD_BYTES"):
            loads_record(bomb, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limits.max_bytes


def test_a_compressed_record_may_expand_to_max_record_bytes_and_no_more():
    value = {"d": "x" * 900}
    size = len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    stored = zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    assert loads_record(stored, RecordLimits(max_bytes=size, max_depth=16)) == value
    with pytest.raises(UnsafeRecord, match="expands to more than MAX_RECORD_BYTES"):
        loads_record(stored, RecordLimits(max_bytes=size - 1, max_depth=16))


def test_a_missing_record_is_none(redis):
    assert BookStore(redis).load_record("404") is None


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(RunsCode()),
        pickle.dumps({"x": RunsCode()}),
        pickle.dumps(pickle.loads),  # a global by reference
        b"cos\nsystem\n(S'touch /tmp/pwned-by-pickle'\ntR.",  # protocol 0, by hand
        b"not a pickle at all",
        b"",
        pickle.dumps(["a list, not a record"]),
    ],
)
def test_a_crafted_pickle_is_refused_without_running_anything(redis, payload):
    if os.path.exists("/tmp/pwned-by-pickle"):
        os.remove("/tmp/pwned-by-pickle")
    redis.set("goodreads:book:9", payload)
    with pytest.raises(UnsafeRecord):
        BookStore(redis).load_record("9")
    assert not os.path.exists("/tmp/pwned-by-pickle")


def test_plain_values_of_every_kind_load():
    value = {"s": "é", "i": -1, "f": 1.5, "n": None, "b": False, "l": [1, [2]], "d": {"k": "v"}, "big": 2**63 - 1}
    assert loads_record(dumps_record(value)) == value


def valid_json(value) -> str:
    """The JSON the API would answer, checked to encode as UTF-8 and to parse back."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    assert json.loads(text.encode("utf-8")) == value
    return text


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("half an emoji \ud83d here", "half an emoji \ufffd here"),
        ("\udc00 a low half first", "\ufffd a low half first"),
        ("a whole pair \ud83d\ude00", "a whole pair \U0001f600"),
        ("plain", "plain"),
    ],
)
def test_lone_surrogates_are_replaced_both_ways(text, clean):
    written = plain_record({"title": text, "genres": [text], text: 1})
    assert written == {"title": clean, "genres": [clean], clean: 1}
    valid_json(written)
    # A record stored before the writer replaced them is repaired as it is read.
    assert loads_record(pickle.dumps({"title": text})) == {"title": clean}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"rating": float("nan")}, "nan is not a JSON number"),
        ({"rating": float("inf")}, "inf is not a JSON number"),
        ({"rating": [float("-inf")]}, "-inf is not a JSON number"),
        ({"cover": b"bytes"}, "a bytes is not plain JSON data"),
        ({"genres": {"a", "b"}}, "a set is not plain JSON data"),
        ({"genres": ("a", "b")}, "a tuple is not plain JSON data"),
        ({"genres": frozenset()}, "a frozenset is not plain JSON data"),
        ({("a", "b"): 1}, "a tuple key is not plain JSON data"),
        ({1: "one"}, "a int key is not plain JSON data"),
        ({"count": 2**63}, "an integer beyond 64 bits"),
        ({"count": -(2**63) - 1}, "an integer beyond 64 bits"),
        ({"count": 10**5000}, "an integer beyond 64 bits"),
        (["a list"], "a record is a dict, not list"),
        ("a string", "a record is a dict, not str"),
    ],
)
def test_what_is_not_plain_json_data_is_refused_both_ways(value, reason):
    with pytest.raises(UnsafeRecord, match=reason):
        dumps_record(value)
    with pytest.raises(UnsafeRecord, match=reason):
        loads_record(pickle.dumps(value))


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_depth_is_bounded_both_ways():
    limits = RecordLimits(max_bytes=10_000, max_depth=4)
    assert plain_record(nested(4), limits) == nested(4)
    with pytest.raises(UnsafeRecord, match="nested deeper than 4 levels"):
        dumps_record(nested(5), limits)
    with pytest.raises(UnsafeRecord, match="nested deeper than 4 levels"):
        loads_record(pickle.dumps(nested(5)), limits)
    # Far deeper than Python's recursion limit (a pickle written by hand, as pickle.dumps
    # cannot): refused, not a RecursionError.
    levels = 100_000
    deep = b"\x80\x04}\x8c\x01a" + b"]" * levels + b"a" * (levels - 1) + b"s."
    with pytest.raises(UnsafeRecord, match="nested deeper"):
        loads_record(deep, RecordLimits())


def test_a_record_that_refers_to_itself_is_refused():
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(UnsafeRecord, match="nested deeper"):
        loads_record(pickle.dumps({"a": cycle}))


def test_size_is_bounded_both_ways():
    limits = RecordLimits(max_bytes=1000, max_depth=16)
    assert plain_record({"description": "x" * 900}, limits)
    with pytest.raises(UnsafeRecord, match="bigger than MAX_RECORD_BYTES as JSON"):
        dumps_record({"description": "x" * 1000}, limits)
    with pytest.raises(UnsafeRecord, match="bigger than MAX_RECORD_BYTES as JSON"):
        plain_record({"genres": ["x"] * 300}, limits)  # many small values add up
    with pytest.raises(UnsafeRecord, match="1001 bytes, over MAX_RECORD_BYTES"):
        loads_record(b"x" * 1001, limits)  # not even unpickled


def test_a_pickle_that_reuses_references_cannot_expand_past_the_limit():
    """1 KB of pickle that would be about a gigabyte of JSON: refused after about
    MAX_RECORD_BYTES of walking, without building the expansion."""
    leaf = ["x" * 1000]
    level = leaf
    for _ in range(3):
        level = [level] * 100
    bomb = pickle.dumps({"bomb": level}, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(bomb) < 2000
    with pytest.raises(UnsafeRecord, match="bigger than MAX_RECORD_BYTES as JSON"):
        loads_record(bomb)


def smallest_limit(value: dict) -> int:
    """The smallest MAX_RECORD_BYTES the check lets ``value`` through with."""
    low, high = 1, 100_000
    while low < high:
        middle = (low + high) // 2
        try:
            plain_record(value, RecordLimits(max_bytes=middle, max_depth=16))
            high = middle
        except UnsafeRecord:
            low = middle + 1
    return low


def test_size_is_about_the_json_and_a_shared_value_is_paid_for_at_every_visit():
    shared = ["abc", 1, 2.5, None, True, {"k": "v"}]
    separate = {"a": list(shared), "b": [*shared[:-1], {"k": "v"}]}
    assert abs(smallest_limit(separate) - len(json.dumps(separate, separators=(",", ":")))) < 10
    assert smallest_limit({"a": shared, "b": shared}) == smallest_limit(separate)


def test_the_check_copies_only_what_it_repairs():
    clean = {"a": ["x"], "b": {"c": 1}}
    assert plain_record(clean) is clean
    dirty = {"a": ["x"], "b": [{"c": "\ud800"}], "\udc00": 1}
    repaired = plain_record(dirty)
    assert repaired == {"a": ["x"], "b": [{"c": "\ufffd"}], "\ufffd": 1}
    assert dirty == {"a": ["x"], "b": [{"c": "\ud800"}], "\udc00": 1}, "the value given is left as it was"
    assert repaired["a"] is dirty["a"]


def test_a_record_refused_on_reading_answers_unsafe_record_from_the_store(redis):
    store = BookStore(redis)
    redis.set("goodreads:book:5", pickle.dumps({"rating": float("nan")}))
    with pytest.raises(UnsafeRecord, match="nan is not a JSON number"):
        store.load_record("5")


def test_the_store_refuses_to_write_a_record_that_is_not_plain_and_writes_nothing(redis):
    store = BookStore(redis)
    with pytest.raises(UnsafeRecord):
        store.save_record("5", {"rating": float("nan")})
    assert redis.exists("goodreads:book:5", "goodreads:status:5") == 0


def test_iter_records_leaves_out_refused_records_and_says_which(redis, caplog):
    store = BookStore(redis)
    store.save_record("1", {"book_id": "1"})
    redis.set("goodreads:book:2", pickle.dumps({"rating": float("nan")}))
    redis.set("goodreads:book:3", b"garbage")
    store.save_record("4", {"book_id": "4"})
    with caplog.at_level(logging.WARNING, logger="books.store"):
        records = list(store.iter_records(["1", "2", "3", "404", "4"], chunk=2))
    assert records == [{**MISSING_VALUES, "book_id": "1"}, {**MISSING_VALUES, "book_id": "4"}]
    assert [record.fields["book_id"] for record in caplog.records] == ["2", "3"]


def test_an_outcome_keeps_the_stored_record(redis):
    store = BookStore(redis)
    store.save_record("7", RECORD)
    store.progress.ended("7", BookStatus.FAILED, "Goodreads failed to answer (HTTP 500)")
    assert store.load_record("7") == {**MISSING_VALUES, **RECORD}
    assert redis.hget("goodreads:status:7", "state") == b"failed"
