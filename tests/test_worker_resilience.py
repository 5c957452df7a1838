"""Workers that outlive Redis trouble: a stopped Redis, a Redis out of memory, a killed worker.
Nothing queued or running is lost, and nobody restarts anything by hand."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from redis import Redis
from redis.exceptions import OutOfMemoryError
from rq import Worker

from books.queue import BookQueue
from books.settings import Settings
from tests.origin import Origin
from tests.processes import BIN, RedisServer, Service, running, wait_until
from tests.test_restarts import children, get, post

pytestmark = pytest.mark.e2e


def stored(redis: Redis, book_ids: list[str]) -> int:
    return sum(redis.exists(f"goodreads:book:{book_id}") for book_id in book_ids)


def worker_pids(redis: Redis) -> set[int]:
    return {worker.pid for worker in Worker.all(connection=redis)}


@pytest.fixture
def own_redis():
    server = RedisServer(appendonly=True)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def own_origin():
    origin = Origin()
    origin.start()
    yield origin
    origin.stop()


def test_a_redis_stop_under_honcho_loses_nothing_and_stops_nothing(own_redis, own_origin, tmp_path):
    """The Procfile under honcho, 2 workers busy, Redis stopped for 10 s: the same processes go on
    and store every book that was queued or running."""
    redis = Redis(port=own_redis.port)
    service = Service(own_redis.url, own_origin.url, tmp_path)
    honcho = service.spawn(
        [str(BIN / "honcho"), "start", "--no-colour", "-f", "Procfile", "-p", str(service.port), "-c", "worker=2"],
        "honcho",
    )
    service.workers.append(honcho)  # stopped (SIGTERM to its group) with the service
    try:
        wait_until(service._web_answers, 30, message="gunicorn under honcho")
        wait_until(lambda: len(worker_pids(redis)) == 2, 30, message="two rq workers under honcho")
        workers_before = worker_pids(redis)
        book_ids = [str(1000 + n) for n in range(30)]
        for book_id in book_ids:
            own_origin.behave(book_id, "slow:1")
        assert post(service, *book_ids).status_code == 202
        queue = BookQueue(redis, Settings())
        wait_until(lambda: queue.job_counts().started == 2, 20, 0.05, "both workers to be busy")

        own_redis.stop()
        time.sleep(10)
        own_redis.start()  # the same port and data (AOF)
        back_at = time.monotonic()
        left = len(book_ids) - stored(redis, book_ids)
        assert left > 2, "books were still queued or running when Redis stopped"

        wait_until(lambda: stored(redis, book_ids) == len(book_ids), 120, 0.5, "every book to be stored")
        took = time.monotonic() - back_at
        assert honcho.poll() is None, "honcho stopped nothing"
        assert get(service, book_ids[-1]).status_code == 200, "the web still answers"
        assert worker_pids(redis) == workers_before, "the same two workers, never restarted"
        assert queue.job_counts().started == 0 and queue.job_counts().queued == 0
        assert len({arrival.book_id for arrival in own_origin.fetches()}) == len(book_ids)
        print(f"{left} books stored {took:.0f} s after Redis came back")
    finally:
        service.stop()
        if honcho.returncode is None:
            os.killpg(honcho.pid, signal.SIGKILL)


def test_redis_out_of_memory_then_freed_every_queued_book_is_stored(own_redis, own_origin, tmp_path):
    redis = Redis(port=own_redis.port)
    service = Service(own_redis.url, own_origin.url, tmp_path)
    try:
        service.start_web()
        supervisor = service.start_worker()
        (worker,) = worker_pids(redis)
        book_ids = [str(2000 + n) for n in range(15)]
        for book_id in book_ids:
            own_origin.behave(book_id, "slow:0.5")
        assert post(service, *book_ids).status_code == 202
        wait_until(lambda: own_origin.fetches(), 20, 0.05, "the first fetch")

        redis.set("filler", b"x" * 12_000_000)
        redis.config_set("maxmemory-policy", "noeviction")
        redis.config_set("maxmemory", 6_000_000)  # a few MB under what Redis now holds
        with pytest.raises(OutOfMemoryError):
            redis.set("probe", "x")
        at_oom = stored(redis, book_ids)
        time.sleep(8)  # the worker meets OOM storing, counting, scheduling, heartbeating
        during = stored(redis, book_ids)
        assert during <= at_oom + 1 and during < len(book_ids), "nothing is written while Redis is full"
        assert running(worker) and supervisor.poll() is None, "the worker waits; it does not exit"

        redis.delete("filler")  # memory freed; maxmemory stays as it is
        freed_at = time.monotonic()
        wait_until(lambda: stored(redis, book_ids) == len(book_ids), 120, 0.5, "every book to be stored")
        assert worker_pids(redis) == {worker}, "the same worker, never restarted"
        assert "OutOfMemoryError" in service.logs()
        print(f"{len(book_ids) - during} books stored {time.monotonic() - freed_at:.0f} s after memory was freed")
    finally:
        service.stop()


def test_a_killed_worker_leaves_no_scheduler_and_is_replaced_in_the_registry(make_service, redis):
    service = make_service(workers=2, WORKER_TTL="20")
    queue = BookQueue(redis, Settings(worker_ttl=20))
    assert queue.live_worker_count() == 2
    # The worker whose child holds the scheduler lock (the other one's scheduler waits for it).
    workers = [children(supervisor.pid)[0] for supervisor in service.workers]
    (owner, scheduler) = next((pid, kids[0]) for pid in workers if (kids := children(pid)))
    killed_name = next(worker.name for worker in Worker.all(connection=redis) if worker.pid == owner)
    os.kill(owner, signal.SIGKILL)
    killed_at = time.monotonic()

    wait_until(lambda: not running(scheduler), 10, 0.1, "the orphaned scheduler to stop")
    stopped_in = time.monotonic() - killed_at
    # It stopped as a scheduler does: its registration deleted, its lock released.
    registered = [redis.hget(key, "pid") for key in redis.scan_iter("rq:scheduler:*")]
    assert str(scheduler).encode() not in registered
    holder = redis.get("rq:scheduler-lock:bookInfoParser")
    assert holder is None or redis.hget(b"rq:scheduler:" + holder, "pid") != str(scheduler).encode()
    # The supervisor starts a new worker, which unregisters the one it follows: RQ alone would
    # keep it registered for WORKER_TTL + 60 s (the live count leaves it out meanwhile).
    names = lambda: {worker.name for worker in Worker.all(connection=redis)}  # noqa: E731
    wait_until(lambda: len(names()) == 2 and killed_name not in names(), 30, 0.2, "the killed worker replaced")
    replaced_in = time.monotonic() - killed_at
    assert queue.live_worker_count() == 2
    assert all(supervisor.poll() is None for supervisor in service.workers)
    print(f"scheduler stopped {stopped_in:.1f} s and the worker replaced {replaced_in:.1f} s after the kill")


def test_the_supervisor_stops_with_the_exit_code_of_its_worker_on_sigterm(make_service):
    service = make_service(workers=1)
    supervisor = service.workers[0]
    (worker,) = children(supervisor.pid)
    # RQ registers a worker before it installs its signal handlers: wait until it listens for jobs.
    redis = Redis.from_url(service.env["REDIS_URL"])
    wait_until(lambda: [w.state for w in Worker.all(connection=redis)] == ["idle"], 30, 0.1, "the worker to listen")
    supervisor.send_signal(signal.SIGTERM)  # as docker stop sends it: to the supervisor only
    assert supervisor.wait(30) == 0
    assert not running(worker)
    assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
