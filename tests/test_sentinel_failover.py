"""Redis with Sentinel, end to end: the Procfile's web and worker processes configured with
REDIS_SENTINELS and REDIS_SENTINEL_MASTER, books being fetched, and a forced failover in the
middle. Nothing is lost, and the service answers again on the new master within 30 s."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from redis import Redis
from rq.registry import StartedJobRegistry

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


def accepted_on(master: Redis, service: Service, book_id: str) -> bool:
    """POST the book; whether its job (or already its record) is on ``master``."""
    try:
        post(service, book_id)
    except requests.RequestException:
        return False
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
        wait_until(lambda: accepted_on(new_master, service, late_id), 30, 0.5, "a book accepted on the new master")
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
