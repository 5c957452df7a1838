"""Redis with Sentinel, end to end: the Procfile's web and worker processes configured with
REDIS_SENTINELS and REDIS_SENTINEL_MASTER, books being fetched, and a forced failover in the
middle. Nothing is lost, and the service answers again on the new master within 30 s."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from redis import Redis
from rq import Worker
from rq.registry import StartedJobRegistry

from books.redis_client import MASTER_CHECK_INTERVAL
from books.settings import Settings
from tests.processes import SentinelGroup, Service, wait_until
from tests.test_restarts import get, post

pytestmark = pytest.mark.e2e

RECORD_KEY = "goodreads:book:{}"


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup()
    group.start()
    yield group
    group.cleanup()


def stored_records(redis: Redis, book_ids: list[str]) -> dict[str, bytes]:
    values = redis.mget([RECORD_KEY.format(book_id) for book_id in book_ids])
    return {book_id: value for book_id, value in zip(book_ids, values, strict=True) if value is not None}


def posted_and_accepted_on(master: Redis, service: Service, book_id: str) -> bool:
    """POST the book; whether its job (or already its record) is on ``master``."""
    try:
        post(service, book_id)
    except requests.RequestException:
        return False
    return accepted_on(master, book_id)


def accepted_on(master: Redis, book_id: str) -> bool:
    """Whether the book's job (or already its record) is on ``master``."""
    return bool(master.exists(f"rq:job:book-{book_id}", RECORD_KEY.format(book_id)))


def test_a_forced_failover_keeps_every_record_and_the_service_answers_on_the_new_master(
    sentinel_group, origin, tmp_path
):
    """Books being fetched, ``SENTINEL FAILOVER``: every record written before it is on the new
    master, the web and worker processes carry on (no restart) and accept, fetch and answer
    books on the new master within 30 s, and every book posted before it is stored, the one
    the worker may have been finishing on the old master as the replica was promoted included
    (the worker puts it back itself, long before RQ's abandoned-job cleanup would)."""
    group = sentinel_group
    book_ids = [str(7000 + n) for n in range(30)]
    late_id = "7999"  # posted after the switch
    for book_id in [*book_ids, late_id]:
        origin.behave(book_id, "slow:0.3")
    service = Service(
        f"redis://127.0.0.1:{group.master.port}/0",
        origin.url,
        tmp_path,
        **group.env,
        FETCH_RATE="4",
        REDIS_MIN_REPLICAS="1",
    )
    try:
        service.start_web()
        service.start_worker()
        old_master = Redis(port=group.master.port)
        assert post(service, *book_ids).status_code == 202

        wait_until(lambda: len(stored_records(old_master, book_ids)) >= 8, 40, 0.1, "8 books stored")
        before = stored_records(old_master, book_ids)
        switched_at = group.failover()
        new_master = Redis(port=group.master_port())
        assert group.master_port() == group.replica.port
        wait_until(
            lambda: posted_and_accepted_on(new_master, service, late_id), 30, 0.5, "a book accepted on the new master"
        )
        wait_until(lambda: new_master.exists(RECORD_KEY.format(late_id)), 30, 0.1, "the new book stored")
        lookup = get(service, next(iter(before)))
        answered_after = time.monotonic() - switched_at
        assert lookup.status_code == 200 and get(service, late_id).status_code == 200
        assert answered_after < 30

        wait_until(lambda: len(stored_records(new_master, book_ids)) == len(book_ids), 40, 0.2, "every book stored")
        all_stored_after = time.monotonic() - switched_at
        after = stored_records(new_master, book_ids)
        assert {book_id: after.get(book_id) for book_id in before} == before  # no record lost or altered
        started = StartedJobRegistry(Settings().queue_name, connection=new_master)
        assert started.get_job_ids(cleanup=False) == []
        assert service.web.poll() is None and all(worker.poll() is None for worker in service.workers)
        print(
            f"records before the failover: {len(before)}; a new book accepted, stored and looked up "
            f"{answered_after:.1f} s after the switch; all {len(book_ids)} books stored {all_stored_after:.1f} s after"
        )
    finally:
        service.stop()


def jobs_done_by_worker(redis: Redis) -> dict[str, int]:
    """Each registered worker's count of finished jobs, as ``redis`` holds it."""
    return {worker.name: worker.successful_job_count for worker in Worker.all(connection=redis)}


def test_idle_workers_serve_the_new_master_within_10_s_of_a_failover(sentinel_group, origin, tmp_path):
    """Two workers, idle (each waiting for a job in a blocking dequeue on the master), then
    ``SENTINEL FAILOVER`` and, once the web writes to the new master, a POST of 20 new books:
    each worker takes books from the new master within 10 s of the switch (not once the old
    master is demoted, or its 45 s wait ends), and all 20 are stored; no worker restarts."""
    group = sentinel_group
    first = [str(8000 + n) for n in range(20)]
    late = [str(8100 + n) for n in range(20)]
    for book_id in first:
        origin.behave(book_id, "slow:0.2")
    for book_id in late:  # 10 s of fetching for one worker: the other has books left to take
        origin.behave(book_id, "slow:0.5")
    service = Service(f"redis://127.0.0.1:{group.master.port}/0", origin.url, tmp_path, **group.env, FETCH_RATE="0")
    try:
        service.start_web()
        service.start_workers(2)
        old_master = Redis(port=group.master.port)
        assert post(service, *first).status_code == 202
        wait_until(lambda: len(stored_records(old_master, first)) == len(first), 60, 0.1, "the first 20 books stored")
        done_before = jobs_done_by_worker(old_master)
        assert len(done_before) == 2 and all(done_before.values()), done_before
        time.sleep(2)  # both workers back in their blocking dequeue, idle

        switched_at = group.failover()
        new_master = Redis(port=group.master_port())
        # The web asks the sentinels at most once a second: past that, its writes go to the new master.
        time.sleep(MASTER_CHECK_INTERVAL + 0.5)
        assert post(service, *late).status_code == 202
        assert all(accepted_on(new_master, book_id) for book_id in late)

        def both_took_books() -> bool:
            done = jobs_done_by_worker(new_master)
            return all(done.get(name, 0) > count for name, count in done_before.items())

        wait_until(both_took_books, 30, 0.1, "each worker to finish a book on the new master")
        served_after = time.monotonic() - switched_at
        wait_until(lambda: len(stored_records(new_master, late)) == len(late), 30, 0.1, "the 20 new books stored")
        stored_after = time.monotonic() - switched_at
        print(
            f"both idle workers took books on the new master {served_after:.1f} s after the switch; "
            f"the 20 new books all stored {stored_after:.1f} s after it"
        )
        assert served_after < 10
        assert all(worker.poll() is None for worker in service.workers)  # no restart was needed
    finally:
        service.stop()
