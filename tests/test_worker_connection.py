"""The worker's Redis client class, on a real Redis."""

from __future__ import annotations

import redis
import redis.utils

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
