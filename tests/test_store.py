"""Record storage on a real Redis, and the unpickler that refuses anything but plain values."""

from __future__ import annotations

import os
import pickle

import pytest

from books.store import BookStore, UnsafeRecord, dumps_record, loads_record

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
    value = {"s": "é", "i": -1, "f": 1.5, "n": None, "b": False, "l": [1, [2]], "t": (1, 2), "d": {"k": "v"}}
    assert loads_record(dumps_record(value)) == value


def test_an_outcome_keeps_the_stored_record(redis):
    store = BookStore(redis)
    store.save_record("7", RECORD)
    store.record_outcome("7", "failed", "Goodreads failed to answer (HTTP 500)")
    assert store.load_record("7") == RECORD
    assert redis.hget("goodreads:status:7", "state") == b"failed"
    assert store.count_attempt("7") == 1
