"""Fixtures: a redis-server of the tests' own, a local Goodreads origin, the app and jobs in
process (the fast layer), and the service's real processes (the ``e2e`` layer)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import fields

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import SimpleWorker
from rq.scheduler import RQScheduler

from app import create_app
from books.jobs import JobSerializer, job_queue
from books.settings import Settings
from tests.openlibrary import FakeOpenLibrary
from tests.origin import Origin
from tests.processes import RedisServer, Service
from worker import context
from worker.context import WorkerContext
from worker.jobs import ServiceJobsWorker

# What the service and its client read from the environment: the settings, gunicorn's number of
# workers, the client's token.
SERVICE_VARIABLES = {setting.name.upper() for setting in fields(Settings)} | {"WEB_CONCURRENCY", "BOOK_INFO_API_TOKEN"}


def pytest_configure(config: pytest.Config) -> None:
    """The tests give every setting they depend on: none comes from the developer's shell or
    ``.env`` (which ``pipenv run`` loads), here or in the processes the tests start."""
    for name in SERVICE_VARIABLES:
        os.environ.pop(name, None)


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


# The in-process layer's settings: the tests' Redis and origin, no rate limit, quick retries, and
# no second source (tests reach no real site; the Open Library tests name their fake one).
IN_PROCESS_SETTINGS = {
    "FALLBACK_SOURCE": "none",
    "FETCH_RATE": "0",
    "RETRY_MAX": "2",
    "RETRY_INTERVALS": "0",
    "FETCH_READ_TIMEOUT": "2",
    "RECORD_CACHE_SIZE": "0",
}


@pytest.fixture
def configure(redis, redis_server, origin, monkeypatch):
    """Settings from the environment, as the processes read them, with overrides; the worker's
    context (settings, session, cookies: worker/context.py) is made again from them."""

    def apply(**overrides: str) -> Settings:
        environment = {
            "REDIS_URL": redis_server.url,
            "GOODREADS_BASE_URL": origin.url,
            **IN_PROCESS_SETTINGS,
            **overrides,
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        made = WorkerContext(Settings.from_env())
        context.use(made)
        return made.settings

    yield apply
    context.use(None)


@pytest.fixture
def settings(configure) -> Settings:
    return configure()


@pytest.fixture
def app(settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["record_cache"].close()


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


class BurstWorker(ServiceJobsWorker, SimpleWorker):
    """RQ's SimpleWorker, reading jobs as the service's workers do, without its command
    channel: a burst run in a test takes no commands, and RQ waits up to a second for the
    channel's listener thread to stop when it quits."""

    def subscribe(self) -> None:
        pass


@pytest.fixture
def run_jobs(redis):
    """Run every queued job in this process, as a worker would (RQ's SimpleWorker, burst mode)."""

    def run(*queue_names: str) -> None:
        """The jobs of ``queue_names`` (the book queue when none is named), the first one's first."""
        BurstWorker(list(queue_names) or [context.settings().queue_name], connection=redis).work(burst=True)

    return run


@pytest.fixture
def run_due_jobs(redis, run_jobs):
    """Make every deferred or retried job (and the fleet's next probe) due now and run the queue,
    as RQ's scheduler and a worker would once their time came."""

    def run() -> None:
        settings = context.settings()
        origin_key = f"{settings.key_prefix}:origin"
        if redis.hexists(origin_key, "next_probe_at"):
            redis.hset(origin_key, "next_probe_at", 0)
        enqueue_scheduled_now(redis, settings.queue_name)
        run_jobs()

    return run


def enqueue_scheduled_now(redis: Redis, queue_name: str) -> None:
    """Put every job scheduled on the queue back on it now, as RQ's scheduler does once due."""
    registry = job_queue(redis, queue_name).scheduled_job_registry
    if due := registry.get_job_ids():
        redis.zadd(registry.key, dict.fromkeys(due, 0))
    scheduler = RQScheduler([queue_name], connection=redis, serializer=JobSerializer)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()


@pytest.fixture
def openlibrary() -> Iterator[FakeOpenLibrary]:
    """The fake Open Library serving recorded answers (tests/openlibrary.py)."""
    fake = FakeOpenLibrary()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def make_service(redis, redis_server, origin, tmp_path, request):
    """Start the web and worker processes with optional setting overrides."""
    started: list[Service] = []

    def start(workers: int = 1, **settings: str) -> Service:
        service = Service(redis_server.url, origin.url, tmp_path, **settings)
        started.append(service)
        service.start_web()
        service.start_workers(workers)
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
