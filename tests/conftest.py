"""Fixtures: a redis-server of the tests' own, a local Goodreads origin, and the service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from tests.origin import Origin
from tests.processes import RedisServer, Service


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[Redis]:
    client = Redis(port=redis_server.port)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_service(redis, redis_server, origin, tmp_path, request):
    """Start the web and worker processes with optional setting overrides."""
    started: list[Service] = []

    def start(workers: int = 1, **settings: str) -> Service:
        service = Service(redis_server.url, origin.url, tmp_path, **settings)
        started.append(service)
        service.start_web()
        for _ in range(workers):
            service.start_worker()
        return service

    yield start
    for service in started:
        service.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(service.logs(tail=4000))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
