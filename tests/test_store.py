"""Record storage on a real Redis, the unpickler that refuses anything but plain values, and
the checks that keep every record plain JSON data within its limits, written or read."""

from __future__ import annotations

import json
import logging
import os
import pickle

import pytest

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
    assert store.load_record("7") == RECORD
    assert redis.type("goodreads:book:7") == b"string"
    outcome = redis.hgetall("goodreads:status:7")
    assert outcome[b"state"] == b"stored" and float(outcome[b"stored_at"]) > 0


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
    assert records == [{"book_id": "1"}, {"book_id": "4"}]
    assert [record.fields["book_id"] for record in caplog.records] == ["2", "3"]


def test_an_outcome_keeps_the_stored_record(redis):
    store = BookStore(redis)
    store.save_record("7", RECORD)
    store.record_outcome("7", "failed", "Goodreads failed to answer (HTTP 500)")
    assert store.load_record("7") == RECORD
    assert redis.hget("goodreads:status:7", "state") == b"failed"
    assert store.count_attempt("7") == 1
