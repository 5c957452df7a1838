"""The worker's Redis client class, on a real Redis: it names its library cheaply, and it waits
out a stopped Redis and a Redis out of memory."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis
import redis.utils
from redis import Redis
from redis.exceptions import ResponseError

from tests.processes import RedisServer
from worker.connection import WorkerRedis


def test_the_worker_client_names_its_library_without_reading_package_metadata(redis_server, monkeypatch):
    def read_metadata():
        raise AssertionError("the installed package's metadata was read for a new connection")

    monkeypatch.setattr(redis.utils, "get_lib_version", read_metadata)
    client = WorkerRedis.from_url(redis_server.url)
    try:
        assert client.ping()
        connection = client.connection_pool.get_connection()
        # What CLIENT SETINFO sends (servers before 7.2 ignore it).
        assert (connection.driver_info.formatted_name, connection.driver_info.lib_version) == (
            "redis-py",
            redis.__version__,
        )
        client.connection_pool.release(connection)
    finally:
        client.close()


@pytest.fixture
def own_redis():
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    thread.start()
    return thread


def test_the_worker_client_waits_out_redis_out_of_memory(configure, own_redis, caplog):
    configure(WORKER_REDIS_BACKOFF_MAX="0.3")
    admin = Redis(port=own_redis.port)
    admin.set("filler", b"x" * 4_000_000)
    admin.config_set("maxmemory", 2_000_000)
    client = WorkerRedis.from_url(own_redis.url)
    with caplog.at_level(logging.INFO, logger="worker.connection"):
        freeing = later(1.0, lambda: admin.delete("filler"))
        started = time.monotonic()
        assert client.hset("h", "f", "v") == 1
        with client.pipeline() as pipe:  # a transaction too
            pipe.set("a", 1).incr("a")
            assert pipe.execute() == [True, 2]
        freeing.join()
    assert time.monotonic() - started >= 0.9, "it waited for the memory to be freed"
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("Redis failed (OutOfMemoryError: command not allowed")
    assert messages[1].startswith("Redis answers again after ")
    client.close()


def test_the_worker_client_waits_out_a_stopped_redis(configure, own_redis):
    configure(WORKER_REDIS_BACKOFF_MAX="0.3")
    client = WorkerRedis.from_url(own_redis.url)
    client.set("k", "before")
    own_redis.stop()
    restarting = later(1.5, own_redis.start)
    assert client.set("k", "after") is True  # blocks until Redis is back (its data is gone: no AOF)
    restarting.join()
    assert client.get("k") == b"after"
    client.close()


def test_other_errors_are_not_retried(configure, own_redis):
    configure()
    client = WorkerRedis.from_url(own_redis.url)
    client.set("k", "a string")
    started = time.monotonic()
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        client.hget("k", "f")
    assert time.monotonic() - started < 1
    client.close()
