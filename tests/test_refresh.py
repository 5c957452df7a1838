"""Refresh in process: the stored-at index, the stale selection, the bounded round, one job per
book across the book and refresh queues, the queue order, the metrics and the round's schedule."""

from __future__ import annotations

import time

import pytest

from books.control import schedule_next
from books.jobs import REFRESH_ROUND, job_queue
from books.links import BookId
from books.queue import BookQueue
from books.refresh import freshness, refresh_round, stale_book_ids
from books.settings import ConfigError, Settings
from books.status import BookStatus, Outcome
from tests.conftest import BurstWorker

DAY = 24 * 3600


def store(queue: BookQueue, book_id: str, age: float) -> None:
    """A record written ``age`` seconds ago (its index entry and status say so)."""
    queue.store.save_record(book_id, {"title": f"book {book_id}"})
    stored_at = time.time() - age
    queue.redis.zadd(queue.store.stored_at_key, {book_id: stored_at})
    queue.redis.hset(queue.store.progress.key(book_id), mapping={"stored_at": stored_at, "at": stored_at})


@pytest.fixture
def queue(configure, redis) -> BookQueue:
    return BookQueue(redis, configure(REFRESH_AFTER=str(DAY), REFRESH_BATCH="3"))


def test_saving_a_record_indexes_it_by_its_time(queue):
    before = time.time()
    queue.store.save_record("5", {"title": "t"})
    score = queue.redis.zscore(queue.store.stored_at_key, "5")
    assert before <= score <= time.time()
    assert float(queue.redis.hget(queue.store.progress.key("5"), "stored_at")) == score


def test_stale_books_come_oldest_first_bounded_and_skip_a_recent_failed_refresh(queue):
    for book_id, age in (("1", 3 * DAY), ("2", 5 * DAY), ("3", 2 * DAY), ("4", 4 * DAY), ("fresh", 60)):
        store(queue, book_id, age)
    assert stale_book_ids(queue, 10) == ["2", "4", "1", "3"]
    assert stale_book_ids(queue, 2) == ["2", "4"]
    queue.store.progress.ended("4", BookStatus.FAILED, "Goodreads failed to answer (HTTP 503)")
    assert stale_book_ids(queue, 2) == ["2", "1"]


def test_the_first_round_indexes_records_written_before_the_index(queue):
    queue.redis.set(queue.store.record_key("7"), b"an earlier record")
    queue.redis.hset(queue.store.progress.key("7"), mapping={"stored_at": time.time() - 2 * DAY})
    queue.redis.set(queue.store.record_key("8"), b"an earlier record without its write time")
    store(queue, "9", 60)
    assert refresh_round(queue) == {"8": "queued", "7": "queued"}  # no write time: the oldest
    assert queue.redis.zscore(queue.store.stored_at_key, "9") > time.time() - 120  # indexed ones keep theirs
    queue.redis.set(queue.store.record_key("10"), b"written after the marker by an older web process")
    refresh_round(queue)
    assert queue.redis.zscore(queue.store.stored_at_key, "10") is None  # the scan runs once


def test_a_round_tops_the_refresh_queue_up_to_refresh_batch(queue):
    for n in range(6):
        store(queue, str(n), DAY + n)
    assert refresh_round(queue) == {"5": "queued", "4": "queued", "3": "queued"}
    assert queue.refresh_queue.job_ids == ["book-5", "book-4", "book-3"]
    assert queue.rq_queue.count == 0
    assert refresh_round(queue) == {}  # the refresh queue is full
    queue.redis.lpop(queue.refresh_queue.key)  # a worker took one
    assert refresh_round(queue) == {"5": "already_queued"}  # still waiting: the index says stale until stored
    assert queue.refresh_queue.count == 2


def test_a_book_queued_by_a_user_is_not_queued_for_refresh(queue):
    store(queue, "7", 2 * DAY)
    assert queue.enqueue_books([BookId("7")]) == {"7": Outcome.QUEUED}
    assert refresh_round(queue) == {"7": Outcome.ALREADY_QUEUED}
    assert queue.rq_queue.job_ids == ["book-7"] and queue.refresh_queue.count == 0


def test_a_book_waiting_for_refresh_that_a_user_asks_for_moves_to_the_user_queue(queue):
    store(queue, "8", 2 * DAY)
    refresh_round(queue)
    assert queue.enqueue_books([BookId("8")]) == {"8": Outcome.ALREADY_QUEUED}
    assert queue.refresh_queue.count == 0 and queue.rq_queue.job_ids == ["book-8"]
    assert queue.rq_queue.fetch_job("book-8").origin == queue.rq_queue.name
    assert queue.enqueue_books([BookId("8")], low_priority=True) == {"8": Outcome.ALREADY_QUEUED}
    assert queue.refresh_queue.count == 0 and queue.rq_queue.job_ids == ["book-8"]


def test_a_refreshed_book_leaves_no_trace_in_the_other_queue_s_registries(configure, redis, run_jobs):
    # RQ keeps finished jobs in its registry only with a RESULT_TTL (by default it deletes them at once).
    queue = BookQueue(redis, configure(REFRESH_AFTER=str(DAY), REFRESH_BATCH="3", RESULT_TTL="3600"))
    queue.enqueue_books([BookId("9")])
    run_jobs()
    assert queue.rq_queue.finished_job_registry.get_job_ids() == ["book-9"]
    queue.redis.zadd(queue.store.stored_at_key, {"9": time.time() - 2 * DAY})
    queue.redis.hset(queue.store.progress.key("9"), mapping={"stored_at": time.time() - 2 * DAY, "at": 0})
    assert refresh_round(queue) == {"9": Outcome.QUEUED}
    assert queue.rq_queue.finished_job_registry.get_job_ids() == []
    run_jobs(queue.refresh_queue.name)
    assert queue.refresh_queue.finished_job_registry.get_job_ids() == ["book-9"]
    assert stale_book_ids(queue, 10) == []


def test_workers_take_the_users_links_before_refresh_jobs(queue, origin, redis):
    for book_id in ("21", "22"):
        store(queue, book_id, 2 * DAY)
    refresh_round(queue)
    queue.enqueue_books([BookId("31"), BookId("32")])
    settings = queue.settings
    BurstWorker(settings.worker_queues, connection=redis).work(burst=True)
    assert [arrival.book_id for arrival in origin.fetches()] == ["31", "32", "21", "22"]
    assert freshness(queue).stale_records == 0


def test_metrics_show_the_oldest_record_and_the_refresh_backlog(redis, client, configure):
    assert b"goodreads_oldest_record_stored_timestamp_seconds" not in client.get("/metrics").data
    queue = BookQueue(redis, configure(REFRESH_BATCH="1"))  # the app's REFRESH_AFTER: 7 days
    store(queue, "1", 10 * DAY)
    store(queue, "2", 8 * DAY)
    store(queue, "3", 60)
    refresh_round(queue)
    metrics = {
        line.split()[0]: float(line.split()[1])
        for line in client.get("/metrics").data.decode().splitlines()
        if line and not line.startswith("#")
    }
    age = time.time() - metrics["goodreads_oldest_record_stored_timestamp_seconds"]
    assert 10 * DAY <= age < 10 * DAY + 60
    assert metrics["goodreads_stale_records"] == 2
    assert metrics["goodreads_refresh_queue_depth"] == 1


def test_a_periodic_job_is_scheduled_once_per_slot(settings, redis):
    assert schedule_next(redis, settings, REFRESH_ROUND, 3600)
    assert not schedule_next(redis, settings, REFRESH_ROUND, 3600)
    [job_id] = job_queue(redis, settings.control_queue_name).scheduled_job_registry.get_job_ids()
    assert job_id == f"refresh-round-{int(time.time() // 3600) + 1}"


def test_the_round_job_schedules_the_next_round_then_queues(configure, redis, run_jobs):
    settings = configure(REFRESH_EVERY="3600", REFRESH_AFTER=str(DAY))
    queue = BookQueue(redis, settings)
    store(queue, "1", 2 * DAY)
    from worker.refresh import run_refresh_round

    job_queue(redis, settings.control_queue_name).enqueue(run_refresh_round)
    run_jobs(settings.control_queue_name)
    assert queue.refresh_queue.job_ids == ["book-1"]
    scheduled = job_queue(redis, settings.control_queue_name).scheduled_job_registry.get_job_ids()
    assert scheduled == [f"refresh-round-{int(time.time() // 3600) + 1}"]


def test_refresh_settings_are_checked():
    assert Settings().refresh_every == 0  # off by default
    assert Settings().worker_queues == [
        "bookInfoParser-control",
        "bookInfoParser",
        "bookInfoParser-callbacks",
        "bookInfoParser-refresh",
    ]
    with pytest.raises(ConfigError, match="REFRESH_BATCH"):
        Settings.from_env({"REFRESH_BATCH": "0"})
    with pytest.raises(ConfigError, match="REFRESH_EVERY"):
        Settings.from_env({"REFRESH_EVERY": "-5"})
