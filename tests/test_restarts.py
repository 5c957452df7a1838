"""Crashes and restarts: a killed worker, a stopped worker, a restarted Redis. Nothing is lost."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from redis import Redis

from tests.origin import Origin
from tests.processes import RedisServer, Service, running, wait_until

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if parent == pid:
                found.append(int(entry))
    return found


def get(service: Service, book_id: str) -> requests.Response:
    return requests.get(
        f"{service.url}/getBookInfo", timeout=15, params={"url": f"https://www.goodreads.com/book/show/{book_id}"}
    )


def post(service: Service, *book_ids: str) -> requests.Response:
    return requests.post(
        f"{service.url}/parseGoodreadsLinks",
        timeout=15,
        json=[f"https://www.goodreads.com/book/show/{book_id}" for book_id in book_ids],
    )


def test_a_killed_worker_is_restarted_and_its_book_fetched_again(make_service, origin, redis):
    """SIGKILL to the rq worker alone, as the OOM killer sends it: its work horse dies with it,
    and the worker the supervisor starts next hands the book back to RQ at once, which retries
    it after its first retry interval (RQ alone would wait for the job's heartbeat to expire)."""
    service = make_service(FETCH_READ_TIMEOUT="20", RETRY_INTERVALS="2")
    origin.behave("501", "slow:8", "page")
    post(service, "501")
    wait_until(lambda: get(service, "501").json().get("status") == "running", 20, 0.1, "the job to start")
    wait_until(lambda: origin.fetches("501"), 10, 0.05, "the fetch to begin")
    (worker,) = children(service.workers[0].pid)  # the rq worker under the Procfile's supervisor
    horses_and_scheduler = children(worker)
    killed_at = time.monotonic()
    os.kill(worker, signal.SIGKILL)

    wait_until(lambda: not any(map(running, horses_and_scheduler)), 10, 0.1, "the horse and scheduler to stop")
    record = wait_until(
        lambda: get(service, "501").status_code == 200 and get(service, "501").json(),
        60,
        0.5,
        "the abandoned book to be stored",
    )
    took = time.monotonic() - killed_at
    assert record["book_id"] == "501" and record["title"] == "The Long Way Home"
    assert len(origin.fetches("501")) == 2
    assert service.workers[0].poll() is None, "the supervisor is still running"
    assert children(service.workers[0].pid) != [worker], "a new rq worker was started"
    print(f"stored {took:.0f} s after the kill")


def test_sigterm_lets_the_running_job_finish(make_service, origin):
    service = make_service(FETCH_READ_TIMEOUT="10")
    origin.behave("502", "slow:3")
    post(service, "502")
    wait_until(lambda: origin.fetches("502"), 20, 0.05, "the fetch to begin")
    service.workers[0].send_signal(signal.SIGTERM)  # as docker stop and honcho send it
    assert service.workers[0].wait(30) == 0
    assert get(service, "502").status_code == 200
    assert len(origin.fetches("502")) == 1


def test_records_survive_a_redis_restart_and_everything_recovers(tmp_path):
    redis_server = RedisServer(appendonly=True)
    redis_server.start()
    origin = Origin()
    origin.start()
    service = Service(redis_server.url, origin.url, tmp_path)
    try:
        service.start_web()
        service.start_worker()
        book_ids = [str(600 + n) for n in range(20)]
        post(service, *book_ids)
        wait_until(lambda: all(get(service, b).status_code == 200 for b in book_ids), 60, 0.5, "records")
        before = {b: get(service, b).json() for b in book_ids}

        redis_server.stop()
        for call in (lambda: get(service, "600"), lambda: post(service, "700")):
            started = time.monotonic()
            response = call()
            assert response.status_code == 503 and response.json()["error"] == "redis_unavailable"
            assert time.monotonic() - started < 5

        redis_server.start()  # same port, same data folder, the AOF replayed
        wait_until(lambda: get(service, "600").status_code == 200, 20, 0.5, "the API to recover")
        assert {b: get(service, b).json() for b in book_ids} == before

        post(service, "700")  # the same worker process picks up new work
        wait_until(lambda: get(service, "700").status_code == 200, 60, 0.5, "the worker to recover")
        assert Redis(port=redis_server.port).info("persistence")["aof_enabled"] == 1
    finally:
        service.stop()
        origin.stop()
        redis_server.cleanup()


def test_a_worker_recycles_itself_after_max_jobs_and_is_started_again(make_service, origin, tmp_path):
    """The Compose worker command: the Procfile's plus --max-jobs; the supervisor starts a fresh worker."""
    from tests.processes import procfile_command

    service = make_service(workers=0)
    post(service, "801", "802", "803")
    supervisor = service.spawn([*procfile_command("worker"), "--max-jobs", "2"], "recycling-worker")
    service.workers.append(supervisor)  # stopped with the service
    wait_until(lambda: get(service, "803").status_code == 200, 60, 0.5, "the third book, by the second worker")
    assert sorted(a.book_id for a in origin.fetches()) == ["801", "802", "803"]
    assert "rq worker exited with code 0" in service.logs()
    assert supervisor.poll() is None
