"""WORKER_FORK=false: the worker runs each job in its own process (``InProcessBookWorker``), and
keeps what matters of a forking worker: job timeouts, a lease on the worker that covers the
job, and a worker that survives being asked to stop a job."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
import requests
from redis import Redis
from rq import get_current_job
from rq.job import Job, JobStatus

from books.jobs import BOOK, JobSerializer, job_queue
from books.queue import BookQueue
from books.settings import Settings
from books.status import BookStatus
from tests.processes import wait_until
from worker import tasks
from worker.rq_worker import InProcessBookWorker
from worker.supervisor import rq_worker_command


class QuietInProcessWorker(InProcessBookWorker):
    """Without its command channel: a burst run in a test takes no commands (see BurstWorker)."""

    def subscribe(self) -> None:
        pass


def forbidden_fork() -> int:
    raise AssertionError("the worker forked")


def worker_lease() -> int:
    """A job that answers how long the Redis key of the worker running it has left to live."""
    job = get_current_job()
    assert job is not None
    return job.connection.ttl(f"rq:worker:{job.worker_name}")


def test_the_supervisor_runs_the_in_process_worker_only_when_told():
    def worker_class(settings: Settings) -> str:
        command = rq_worker_command(settings, [])
        return command[command.index("--worker-class") + 1]

    assert worker_class(Settings()) == "worker.rq_worker.BookWorker"
    assert worker_class(Settings(worker_fork=False)) == "worker.rq_worker.InProcessBookWorker"


def test_books_are_stored_without_a_fork_over_one_kept_connection(configure, redis, origin, monkeypatch):
    settings = configure(WORKER_FORK="false")
    books = ["11", "12", "13", "14"]
    BookQueue(redis, settings).enqueue_books(books)
    monkeypatch.setattr(os, "fork", forbidden_fork)
    QuietInProcessWorker(settings.worker_queues, connection=redis).work(burst=True)
    states = BookQueue(redis, settings).states(books)
    assert {state.status for state in states.values()} == {BookStatus.STORED}
    assert [arrival.book_id for arrival in origin.fetches()] == books
    # One session from book to book: its connection too (a forked horse opens one per book).
    assert len({arrival.client_port for arrival in origin.fetches()}) == 1


def a_book_job(monkeypatch: pytest.MonkeyPatch, run: Callable[[str], object]) -> str:
    """The book job's function (the only kind a worker runs), made to ``run`` instead."""
    monkeypatch.setattr(tasks, "parse_book", run)
    return BOOK.func


def test_a_job_past_its_timeout_is_stopped_in_the_worker_which_goes_on(configure, redis, monkeypatch):
    settings = configure()
    queue = job_queue(redis, settings.queue_name)
    func = a_book_job(monkeypatch, lambda book_id: time.sleep(30) if book_id == "1" else worker_lease())
    slow = queue.enqueue(func, "1", job_timeout=1)
    quick = queue.enqueue(func, "2", result_ttl=60)
    started = time.monotonic()
    QuietInProcessWorker([queue], connection=redis).work(burst=True)
    assert time.monotonic() - started < 10
    slow = Job.fetch(slow.id, connection=redis, serializer=JobSerializer)
    assert slow.get_status() == JobStatus.FAILED
    assert "JobTimeoutException" in (slow.latest_result().exc_string or "")
    assert Job.fetch(quick.id, connection=redis, serializer=JobSerializer).get_status() == JobStatus.FINISHED


def test_without_heartbeats_during_a_job_the_lease_taken_at_its_start_covers_its_timeout(configure, redis, monkeypatch):
    """A forking worker heartbeats every 10 s while its horse works, each heartbeat a lease of
    70 s; one that runs the job itself cannot, so its lease lasts the job's timeout and a minute."""
    settings = configure()
    queue = job_queue(redis, settings.queue_name)
    job = queue.enqueue(a_book_job(monkeypatch, lambda book_id: worker_lease()), "1", job_timeout=300, result_ttl=60)
    QuietInProcessWorker([queue], connection=redis).work(burst=True)
    assert Job.fetch(job.id, connection=redis, serializer=JobSerializer).return_value() >= 300 + 60 - 5


def test_asking_to_stop_a_job_signals_no_process_group(configure, redis, monkeypatch):
    """RQ's forking Worker kills its horse's process group; without a horse that group would be
    the worker's own, the supervisor's too."""
    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda group, sig: signalled.append((group, sig)))
    worker = QuietInProcessWorker([configure().queue_name], connection=redis)
    worker.kill_horse()
    assert signalled == []


@pytest.mark.e2e
def test_a_supervised_worker_without_forks_stores_books_and_stops_a_job_at_its_timeout(
    make_service, origin, redis: Redis
):
    # A page that takes 8 s to start, read timeout 10 s: only the 2 s job timeout stops it.
    origin.behave("30", "slow:8")
    service = make_service(
        WORKER_FORK="false", JOB_TIMEOUT="2", FETCH_WAIT_MAX="0.5", FETCH_READ_TIMEOUT="10", RETRY_MAX="0"
    )
    worker = service.workers[0]
    links = [f"https://www.goodreads.com/book/show/{book}" for book in ("30", "31", "32", "33")]
    assert requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=10).status_code == 202

    def state(link: str) -> str | None:
        body = requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10).json()
        return "stored" if "title" in body else body.get("status")

    wait_until(lambda: all(state(link) == "stored" for link in links[1:]), 60, 0.2, "the quick books stored")
    wait_until(lambda: state(links[0]) == "failed", 60, 0.2, "the slow book failed")
    reason = requests.get(f"{service.url}/getBookInfo", params={"url": links[0]}, timeout=10).json()["reason"]
    assert "JobTimeoutException" in reason
    assert len(origin.fetches("30")) == 1, "stopped at its timeout, not retried"
    # The worker lived through the timeout, and fetched the other books over one kept connection.
    assert worker.poll() is None
    assert len({arrival.client_port for arrival in origin.fetches() if arrival.book_id != "30"}) == 1
