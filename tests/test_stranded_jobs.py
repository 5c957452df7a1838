"""A job whose end was lost (written to a master that a failover left behind) is put back by
its worker at once, its attempt given back, rather than waiting for RQ's abandoned-job
cleanup; jobs the worker is still running are left alone."""

from __future__ import annotations

from rq import Queue
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, Execution
from rq.job import Job, JobStatus

from books.links import BookId
from books.queue import BookQueue
from books.status import BookStatus
from worker.rq_worker import BookWorker


def start_job(queue: BookQueue, worker: BookWorker, book_id: str) -> Execution:
    """Take the book's job as RQ's worker and work horse do, up to the moment the fetch begins."""
    found = Queue.dequeue_any([queue.rq_queue], None, connection=queue.redis)
    assert found is not None
    job, _ = found
    assert job.id == f"book-{book_id}"
    execution = worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    queue.store.count_attempt(book_id)
    return execution


def test_a_job_its_worker_no_longer_runs_goes_back_to_the_front_of_the_queue_unspent(redis, settings, origin, run_jobs):
    queue = BookQueue(redis, settings)
    queue.enqueue_books([BookId("7"), BookId("8")])
    worker = BookWorker([queue.rq_queue], connection=redis)
    worker.register_birth()
    start_job(queue, worker, "7")
    worker.executions.clear()  # its end went to another server: here it still looks started
    assert queue.state(BookId("7")).status == BookStatus.RUNNING

    assert queue.requeue_stranded(worker.name) == ["book-7"]

    assert Job.fetch("book-7", connection=redis).get_status() == JobStatus.QUEUED
    assert redis.lrange(queue.rq_queue.key, 0, -1) == [b"book-7", b"book-8"]
    assert queue.rq_queue.started_job_registry.get_job_ids() == []
    assert redis.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker.name)) == set()
    assert redis.keys("rq:execution:book-7:*") == []
    assert redis.hget(queue.store.status_key("7"), "attempts") == b"0"
    assert queue.state(BookId("7")).status == BookStatus.QUEUED
    assert queue.requeue_stranded(worker.name) == []  # once

    run_jobs()
    assert queue.store.load_record("7") is not None and queue.store.load_record("8") is not None
    assert redis.hget(queue.store.status_key("7"), "attempts") == b"1"


def test_the_jobs_a_worker_runs_are_left_alone(redis, settings):
    queue = BookQueue(redis, settings)
    queue.enqueue_books([BookId("7")])
    worker = BookWorker([queue.rq_queue], connection=redis)
    worker.register_birth()
    execution = start_job(queue, worker, "7")

    assert queue.requeue_stranded(worker.name, [execution.composite_key]) == []
    assert queue.requeue_stranded("another-worker") == []

    assert Job.fetch("book-7", connection=redis).get_status() == JobStatus.STARTED
    assert queue.rq_queue.started_job_registry.get_job_ids(cleanup=False) == ["book-7"]
    assert redis.llen(queue.rq_queue.key) == 0


def test_a_job_that_is_over_is_only_cleared_from_the_workers_executions(redis, settings):
    queue = BookQueue(redis, settings)
    queue.enqueue_books([BookId("7")])
    worker = BookWorker([queue.rq_queue], connection=redis)
    worker.register_birth()
    start_job(queue, worker, "7")
    worker.executions.clear()
    redis.hset(Job.key_for("book-7"), "status", JobStatus.FAILED)

    assert queue.requeue_stranded(worker.name) == []

    assert redis.llen(queue.rq_queue.key) == 0
    assert redis.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker.name)) == set()
    assert redis.hget(queue.store.status_key("7"), "attempts") == b"1"
