"""Jobs left looking ``started`` by no one, taken up at once rather than when RQ's
abandoned-job cleanup finds their heartbeats expired: a job whose end was lost (written to a
master that a failover left behind) is put back by its worker, its attempt given back; the
jobs of a worker that was killed are handled as abandoned by the one its supervisor starts
next, which is safe because a work horse dies with its worker. Jobs a worker is still
running are left alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Queue, Worker
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, Execution
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from books.links import BookId
from books.queue import BookQueue
from books.status import BookStatus
from tests.processes import ROOT, running, wait_until
from worker.jobs import ServiceJob
from worker.recovery import WorkerRecovery, scheduler_name
from worker.rq_worker import BookWorker


def start_job(queue: BookQueue, book_id: str) -> tuple[BookWorker, Execution]:
    """A new worker takes the book's job, as RQ's worker and work horse do, up to the moment
    the fetch begins."""
    worker = BookWorker([queue.rq_queue], connection=queue.redis)
    worker.register_birth()
    found = Queue.dequeue_any(worker.queues, None, connection=queue.redis, job_class=ServiceJob)
    assert found is not None
    job, _ = found
    assert job.id == f"book-{book_id}"
    execution = worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    queue.store.progress.started(book_id)
    return worker, execution


def test_a_job_its_worker_no_longer_runs_goes_back_to_the_front_of_the_queue_unspent(redis, settings, origin, run_jobs):
    queue = BookQueue(redis, settings)
    recovery = WorkerRecovery(redis, settings)
    queue.enqueue_books([BookId("7"), BookId("8")])
    worker, _ = start_job(queue, "7")
    worker.executions.clear()  # its end went to another server: here it still looks started
    assert queue.state(BookId("7")).status == BookStatus.RUNNING

    assert recovery.requeue_stranded(worker.name) == ["book-7"]

    assert ServiceJob.fetch("book-7", connection=redis).get_status() == JobStatus.QUEUED
    assert redis.lrange(queue.rq_queue.key, 0, -1) == [b"book-7", b"book-8"]
    assert queue.rq_queue.started_job_registry.get_job_ids() == []
    assert redis.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker.name)) == set()
    assert redis.keys("rq:execution:book-7:*") == []
    assert redis.hget(queue.store.progress.key("7"), "attempts") == b"0"
    assert queue.state(BookId("7")).status == BookStatus.QUEUED
    assert recovery.requeue_stranded(worker.name) == []  # once

    run_jobs()
    assert queue.store.load_record("7") is not None and queue.store.load_record("8") is not None
    assert redis.hget(queue.store.progress.key("7"), "attempts") == b"1"


def test_the_jobs_a_worker_runs_are_left_alone(redis, settings):
    queue = BookQueue(redis, settings)
    recovery = WorkerRecovery(redis, settings)
    queue.enqueue_books([BookId("7")])
    worker, execution = start_job(queue, "7")

    assert recovery.requeue_stranded(worker.name, [execution.composite_key]) == []
    assert recovery.requeue_stranded("another-worker") == []

    assert ServiceJob.fetch("book-7", connection=redis).get_status() == JobStatus.STARTED
    assert queue.rq_queue.started_job_registry.get_job_ids(cleanup=False) == ["book-7"]
    assert redis.llen(queue.rq_queue.key) == 0


def test_a_job_that_is_over_is_only_cleared_from_the_workers_executions(redis, settings):
    queue = BookQueue(redis, settings)
    recovery = WorkerRecovery(redis, settings)
    queue.enqueue_books([BookId("7")])
    worker, _ = start_job(queue, "7")
    worker.executions.clear()
    redis.hset(Job.key_for("book-7"), "status", JobStatus.FAILED)

    assert recovery.requeue_stranded(worker.name) == []

    assert redis.llen(queue.rq_queue.key) == 0
    assert redis.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker.name)) == set()
    assert redis.hget(queue.store.progress.key("7"), "attempts") == b"0"  # spent only with an outcome: none here


def test_the_jobs_of_a_dead_worker_are_retried_as_rq_retries_abandoned_jobs_and_it_is_unregistered(redis, configure):
    settings = configure(RETRY_INTERVALS="15")
    queue = BookQueue(redis, settings)
    recovery = WorkerRecovery(redis, settings)
    queue.enqueue_books([BookId("7"), BookId("8")])
    dead, _ = start_job(queue, "7")
    alive, _ = start_job(queue, "8")
    lock = RQScheduler.get_locking_key(queue.name)
    redis.set(lock, scheduler_name(dead.name))  # its scheduler, not yet gone, holds the lock
    other_lock = RQScheduler.get_locking_key(queue.refresh_queue.name)
    redis.set(other_lock, scheduler_name(alive.name))

    assert recovery.settle_dead_worker(dead.name) == ["book-7"]

    job = ServiceJob.fetch("book-7", connection=redis)
    assert job.get_status() == JobStatus.SCHEDULED  # after the first retry interval, as RQ retries it
    assert job.retries_left == settings.retry_max - 1
    assert ScheduledJobRegistry(queue.name, connection=redis).get_job_ids() == ["book-7"]
    assert queue.rq_queue.started_job_registry.get_job_ids(cleanup=False) == ["book-8"]
    assert [worker.name for worker in Worker.all(connection=redis)] == [alive.name]
    assert not redis.exists(lock) and redis.get(other_lock) == scheduler_name(alive.name).encode()
    assert recovery.settle_dead_worker(dead.name) == []
    assert recovery.settle_dead_worker("never-ran") == []


def test_a_dead_worker_s_jobs_are_left_expired_to_the_worker_cleaning_the_registries_now(redis, settings):
    """RQ's maintenance lock held by another worker: that worker retries them, not a second time here."""
    queue = BookQueue(redis, settings)
    recovery = WorkerRecovery(redis, settings)
    queue.enqueue_books([BookId("7")])
    dead, _ = start_job(queue, "7")
    assert queue.rq_queue.acquire_maintenance_lock()

    assert recovery.settle_dead_worker(dead.name) == ["book-7"]

    assert ServiceJob.fetch("book-7", connection=redis).get_status() == JobStatus.STARTED
    assert queue.rq_queue.started_job_registry.get_expired_job_ids() == ["book-7"]


WORKER_WITH_A_HORSE = """
import os, time
from worker.rq_worker import die_with_parent
parent = os.getpid()
horse = os.fork()
if horse == 0:
    die_with_parent(parent)
    time.sleep(60)
    os._exit(0)
open("horse", "w").write(str(horse))
time.sleep(60)
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_a_work_horse_dies_with_its_worker(tmp_path):
    """Handing a dead worker's jobs back to RQ is safe only if nothing still runs them."""
    worker = subprocess.Popen([sys.executable, "-c", WORKER_WITH_A_HORSE], cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    try:
        noted = tmp_path / "horse"
        horse = int(wait_until(lambda: noted.exists() and noted.read_text(), 20, 0.05, "the fork"))
        time.sleep(0.5)
        assert running(horse)
        worker.kill()
        worker.wait(5)
        wait_until(lambda: not running(horse), 5, 0.05, "the horse to die with its worker")
    finally:
        worker.kill()
