"""How Redis clients are made: REDIS_URL's server, or with REDIS_SENTINELS the master a real
sentinel names, for the app, the worker's connection class, the record cache and the dashboard;
and the settings' checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from redis.connection import SSLConnection

from app import create_app
from books.redis_client import FollowingSentinelPool, redis_client
from books.settings import ConfigError, Settings
from tests.conftest import BurstWorker
from tests.processes import SentinelGroup, wait_until
from worker.connection import PatientRetry, WorkerRedis
from worker.rq_worker import SENTINEL_DEQUEUE_TIMEOUT, BookWorker

SENTINEL = {"REDIS_SENTINELS": "10.0.0.5:26379, sentinel-2:26380,[::1]:26381", "REDIS_SENTINEL_MASTER": "books"}


def test_the_sentinels_are_read_as_host_port_pairs():
    settings = Settings.from_env(SENTINEL)
    assert settings.sentinel_addresses == [("10.0.0.5", 26379), ("sentinel-2", 26380), ("::1", 26381)]
    assert Settings.from_env({}).sentinel_addresses == []


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({**SENTINEL, "REDIS_SENTINELS": "10.0.0.5"}, "REDIS_SENTINELS='10.0.0.5'"),
        ({**SENTINEL, "REDIS_SENTINELS": "10.0.0.5:26379,sentinel-2:port"}, "REDIS_SENTINELS='sentinel-2:port'"),
        ({**SENTINEL, "REDIS_SENTINELS": "10.0.0.5:70000"}, "REDIS_SENTINELS"),
        ({**SENTINEL, "REDIS_SENTINELS": ","}, "REDIS_SENTINELS must list"),
        ({"REDIS_SENTINEL_MASTER": "books"}, "REDIS_SENTINEL_MASTER and REDIS_SENTINEL_PASSWORD need REDIS_SENTINELS"),
        ({"REDIS_SENTINEL_PASSWORD": "secret"}, "need REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "10.0.0.5:26379"}, "REDIS_SENTINELS needs REDIS_SENTINEL_MASTER"),
        ({**SENTINEL, "REDIS_URL": "unix:///run/redis.sock"}, "REDIS_URL must be redis:// or rediss://"),
        ({"REDIS_URL": "http://user:secret@redis:6379"}, "REDIS_URL must be a redis://"),
    ],
)
def test_a_redis_setting_the_service_cannot_use_is_named(env, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace("[", r"\[")) as error:
        Settings.from_env(env)
    assert "secret" not in str(error.value)


def test_passwords_stay_out_of_the_settings_repr():
    settings = Settings.from_env(
        {**SENTINEL, "REDIS_URL": "redis://:master-secret@x/0", "REDIS_SENTINEL_PASSWORD": "sentinel-secret"}
    )
    assert "secret" not in repr(settings)


def test_without_sentinels_the_client_is_redis_url_s_server():
    client = redis_client(Settings(redis_url="rediss://:pw@cache.internal:6380/2"), socket_timeout=1.5)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("cache.internal", 6380, 2, "pw")
    assert client.connection_pool.connection_class is SSLConnection and kwargs["socket_timeout"] == 1.5


def test_with_sentinels_the_master_takes_database_credentials_and_tls_from_redis_url():
    settings = Settings.from_env(
        {**SENTINEL, "REDIS_URL": "rediss://app:master-pw@ignored:1/3", "REDIS_SENTINEL_PASSWORD": "s-pw"}
    )
    client = redis_client(settings, socket_timeout=1.5)
    pool = client.connection_pool
    assert isinstance(pool, FollowingSentinelPool) and pool.service_name == "books"
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"], kwargs["socket_timeout"]) == (
        3,
        "app",
        "master-pw",
        1.5,
    )
    assert "host" not in kwargs and issubclass(pool.connection_class, SSLConnection)
    sentinels = [sentinel.connection_pool.connection_kwargs for sentinel in pool.sentinel_manager.sentinels]
    assert [(s["host"], s["port"], s["password"]) for s in sentinels] == [
        ("10.0.0.5", 26379, "s-pw"),
        ("sentinel-2", 26380, "s-pw"),
        ("::1", 26381, "s-pw"),
    ]


def test_the_worker_connection_class_uses_the_sentinels_and_keeps_its_patience(configure):
    configure(**SENTINEL)
    client = WorkerRedis.from_url("redis://127.0.0.1:6379/0")
    assert isinstance(client, WorkerRedis) and isinstance(client.connection_pool, FollowingSentinelPool)
    assert isinstance(client.connection_pool.connection_kwargs["retry"], PatientRetry)


def test_with_sentinels_an_idle_worker_waits_for_a_job_at_most_a_few_seconds_on_one_master(configure, redis):
    """A blocking dequeue stays on the master it began on: with Sentinel it ends after
    SENTINEL_DEQUEUE_TIMEOUT, so the worker asks the sentinels again; without, RQ's wait."""
    configure(WORKER_TTL="60")
    assert BookWorker(["books"], connection=redis, worker_ttl=60).dequeue_timeout == 45
    configure(**SENTINEL)
    assert BookWorker(["books"], connection=redis, worker_ttl=60).dequeue_timeout == SENTINEL_DEQUEUE_TIMEOUT


@pytest.fixture(scope="module")
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup()
    group.start()
    yield group
    group.cleanup()


def test_the_app_its_record_cache_and_its_dashboard_use_the_master_the_sentinel_names(
    sentinel_group, configure, origin
):
    """A real master, replica and sentinel; REDIS_URL points nowhere, so only the sentinel can
    lead the clients to the master."""
    settings = configure(REDIS_URL="redis://127.0.0.1:1/0", RECORD_CACHE_SIZE="100", **sentinel_group.env)
    app = create_app(settings)
    try:
        client = app.test_client()
        master = app.extensions["book_queue"].redis
        assert isinstance(master.connection_pool, FollowingSentinelPool)
        assert app.redis_conn is master  # the dashboard's views use the app's client
        assert client.post("/parseGoodreadsLinks", json=["https://www.goodreads.com/book/show/42"]).status_code == 202
        BurstWorker([settings.queue_name], connection=master).work(burst=True)
        assert client.get("/getBookInfo?url=https://www.goodreads.com/book/show/42").status_code == 200
        cache = app.extensions["record_cache"]
        wait_until(lambda: cache.live, 10, 0.05, "the record cache's tracking on the master")
        assert client.get("/getBookInfo?url=https://www.goodreads.com/book/show/42").status_code == 200
        assert len(cache) == 1  # kept: tracked on the master
        assert client.get("/rqstatus/0/view/workers").status_code == 200
        assert client.get("/rqstatus/1/view/workers").status_code == 404
    finally:
        app.extensions["record_cache"].close()


def test_with_sentinels_a_call_waits_for_a_free_connection_too(sentinel_group, configure):
    """The web's pool bound holds on the Sentinel path: one call more than the pool's connections
    waits for one to come free instead of failing at once."""
    settings = configure(REDIS_URL="redis://127.0.0.1:1/0", **sentinel_group.env)
    client = redis_client(settings, max_connections=2)
    pool = client.connection_pool
    busy = [pool.get_connection() for _ in range(2)]
    freed = threading.Timer(0.3, pool.release, [busy.pop()])
    freed.start()
    started = time.monotonic()
    try:
        assert client.ping()
    finally:
        freed.join()
        for connection in busy:
            pool.release(connection)
    assert 0.25 <= time.monotonic() - started < 3


def test_a_post_waits_for_the_replicas_it_is_told_to(sentinel_group, configure):
    """With REDIS_MIN_REPLICAS, a POST is answered 202 once a replica holds its jobs, and 503
    (never a silent 202) when fewer replicas than asked for confirm them."""
    settings = configure(REDIS_URL="redis://127.0.0.1:1/0", REDIS_MIN_REPLICAS="1", **sentinel_group.env)
    app = create_app(settings)
    try:
        link = "https://www.goodreads.com/book/show/{}"
        assert app.test_client().post("/parseGoodreadsLinks", json=[link.format(51)]).status_code == 202
        replica = Redis(port=sentinel_group.replica.port)
        assert replica.exists("rq:job:book-51")  # on the replica when the client was told
        too_many = create_app(
            configure(
                REDIS_URL="redis://127.0.0.1:1/0",
                REDIS_MIN_REPLICAS="2",
                REDIS_SOCKET_TIMEOUT="0.5",
                **sentinel_group.env,
            )
        )
        try:
            response = too_many.test_client().post("/parseGoodreadsLinks", json=[link.format(52)])
        finally:
            too_many.extensions["record_cache"].close()
        assert response.status_code == 503 and response.json["error"] == "not_replicated"
    finally:
        app.extensions["record_cache"].close()
