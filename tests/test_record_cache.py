"""The web process's record cache against a real Redis: kept, answered, and dropped whenever
Redis says the record changed or the tracking connection breaks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis import Redis

from app.record_cache import RecordCache
from books.settings import Settings
from tests.processes import RedisServer, wait_until

PREFIX = "goodreads:book:"


def write(redis: Redis, book_id: str, value: bytes) -> None:
    """Set a record key and let its own invalidation reach the cache (a body read while the
    invalidation of an earlier write is on its way is, rightly, not kept)."""
    redis.set(PREFIX + book_id, value)
    time.sleep(0.1)


@pytest.fixture
def cache(redis_server: RedisServer, redis: Redis) -> Iterator[RecordCache]:
    cache = RecordCache(
        Settings(redis_url=redis_server.url), PREFIX, max_entries=3, socket_timeout=2.0, max_bytes=1_000_000
    )
    cache.fetch("0", lambda: None)  # starts the listener
    wait_until(lambda: cache.live, 5, 0.01, "tracking to be on")
    yield cache
    cache.close()


class Loads:
    """A load function that reads the record key and counts its calls."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.calls = 0

    def __call__(self, book_id: str):
        def load() -> bytes | None:
            self.calls += 1
            return self.redis.get(PREFIX + book_id)

        return load


def test_a_kept_body_is_answered_without_reading_redis(cache, redis):
    write(redis, "1", b"one")
    loads = Loads(redis)
    assert cache.fetch("1", loads("1")) == b"one"
    assert cache.fetch("1", loads("1")) == b"one"
    assert loads.calls == 1
    assert cache.fetch("2", loads("2")) is None and cache.fetch("2", loads("2")) is None
    assert loads.calls == 3, "a missing record is not kept"


@pytest.mark.parametrize("change", ["set", "delete", "expire", "flushall"])
def test_a_changed_record_is_dropped_and_read_again(cache, redis, change):
    write(redis, "1", b"old")
    redis.set("goodreads:status:1", b"unrelated")
    cache.fetch("1", Loads(redis)("1"))
    redis.set("goodreads:status:1", b"other keys do not touch the cache")
    time.sleep(0.2)
    assert len(cache) == 1
    {
        "set": lambda: redis.set(PREFIX + "1", b"new"),
        "delete": lambda: redis.delete(PREFIX + "1"),
        "expire": lambda: redis.pexpire(PREFIX + "1", 1),
        "flushall": redis.flushall,
    }[change]()
    wait_until(lambda: len(cache) == 0, 2, 0.01, "the entry to be dropped")
    time.sleep(0.01)
    expected = b"new" if change == "set" else None
    assert cache.fetch("1", Loads(redis)("1")) == expected


def test_a_record_changed_while_it_is_read_is_not_kept(cache, redis):
    write(redis, "1", b"old")

    def load_during_a_write() -> bytes | None:
        value = redis.get(PREFIX + "1")
        redis.set(PREFIX + "1", b"new")
        time.sleep(0.2)  # the invalidation arrives before the read value is kept
        return value

    assert cache.fetch("1", load_during_a_write) == b"old"
    assert len(cache) == 0
    assert cache.fetch("1", Loads(redis)("1")) == b"new"


def test_at_most_max_entries_least_recently_used_first_out(cache, redis):
    loads = Loads(redis)
    for book_id in "12345":
        write(redis, book_id, book_id.encode())
    for book_id in "123":
        cache.fetch(book_id, loads(book_id))
    cache.fetch("1", loads("1"))  # 1 is used again, so 2 is the oldest
    cache.fetch("4", loads("4"))
    assert len(cache) == 3
    calls = loads.calls
    cache.fetch("1", loads("1"))
    cache.fetch("3", loads("3"))
    assert loads.calls == calls
    cache.fetch("2", loads("2"))
    assert loads.calls == calls + 1


def test_a_broken_tracking_connection_empties_the_cache_until_it_is_back(cache, redis):
    write(redis, "1", b"one")
    cache.fetch("1", Loads(redis)("1"))
    redis.client_kill_filter(_type="pubsub")
    wait_until(lambda: not cache.live, 2, 0.01, "the cache to notice")
    assert len(cache) == 0
    loads = Loads(redis)
    cache.fetch("1", loads("1"))
    assert len(cache) == 0 and loads.calls == 1, "nothing is kept while tracking is off"
    wait_until(lambda: cache.live, 5, 0.05, "tracking to be on again")
    cache.fetch("1", loads("1"))
    assert cache.fetch("1", loads("1")) == b"one" and loads.calls == 2


def test_while_redis_is_down_nothing_is_answered_from_the_cache(tmp_path):
    server = RedisServer()
    server.start()
    redis = Redis(port=server.port, socket_timeout=1)
    cache = RecordCache(Settings(redis_url=server.url), PREFIX, max_entries=10, socket_timeout=1.0, max_bytes=1_000_000)
    try:
        write(redis, "1", b"one")
        cache.fetch("1", lambda: None)
        wait_until(lambda: cache.live, 5, 0.01, "tracking to be on")
        cache.fetch("1", Loads(redis)("1"))
        assert len(cache) == 1
        server.stop()
        wait_until(lambda: not cache.live and len(cache) == 0, 3, 0.01, "the cache to empty")
        with pytest.raises(Exception):  # noqa: B017 (whatever the client raises for a refused connection)
            cache.fetch("1", Loads(redis)("1"))
        server.start()
        wait_until(lambda: cache.live, 10, 0.05, "tracking to be on again")
        write(redis, "1", b"after")
        assert cache.fetch("1", Loads(redis)("1")) == b"after"
    finally:
        cache.close()
        redis.close()
        server.cleanup()


def test_size_zero_turns_the_cache_off(redis_server, redis):
    cache = RecordCache(
        Settings(redis_url=redis_server.url), PREFIX, max_entries=0, socket_timeout=1.0, max_bytes=1_000_000
    )
    write(redis, "1", b"one")
    loads = Loads(redis)
    for _ in range(3):
        assert cache.fetch("1", loads("1")) == b"one"
    assert loads.calls == 3 and len(cache) == 0 and not cache.live


def test_at_most_max_bytes_least_recently_used_first_out_and_no_body_bigger_than_that(redis_server, redis):
    cache = RecordCache(Settings(redis_url=redis_server.url), PREFIX, max_entries=100, socket_timeout=2.0, max_bytes=10)
    try:
        cache.fetch("0", lambda: None)
        wait_until(lambda: cache.live, 5, 0.01, "tracking to be on")
        for book_id in "1234":
            write(redis, book_id, book_id.encode() * 4)
        write(redis, "5", b"x" * 11)
        loads = Loads(redis)
        for book_id in "123":
            cache.fetch(book_id, loads(book_id))
        assert len(cache) == 2 and cache.size_in_bytes == 8, "the third body pushed the first out"
        cache.fetch("2", loads("2"))  # 2 used again, so 3 is the oldest
        cache.fetch("4", loads("4"))
        calls = loads.calls
        assert cache.fetch("2", loads("2")) == b"2222" and cache.fetch("4", loads("4")) == b"4444"
        assert loads.calls == calls
        assert cache.fetch("5", loads("5")) == b"x" * 11, "a body bigger than the bound is answered"
        assert cache.size_in_bytes == 8 and cache.fetch("5", loads("5")) and loads.calls == calls + 2, "but not kept"
        redis.delete(PREFIX + "2")
        wait_until(lambda: cache.size_in_bytes == 4, 2, 0.01, "the dropped body's bytes to be given back")
    finally:
        cache.close()


def test_max_bytes_zero_turns_the_cache_off(redis_server, redis):
    cache = RecordCache(Settings(redis_url=redis_server.url), PREFIX, max_entries=10, socket_timeout=1.0, max_bytes=0)
    write(redis, "1", b"one")
    loads = Loads(redis)
    assert cache.fetch("1", loads("1")) == b"one" and cache.fetch("1", loads("1")) == b"one"
    assert loads.calls == 2 and len(cache) == 0 and not cache.live
