"""Jobs written into Redis by someone else, under the running service (gunicorn and the
supervised rq worker): none of their code runs, each ends failed with its reason, and the
service goes on storing books."""

from __future__ import annotations

import pytest
import requests
from redis import Redis

from tests.crafted_jobs import json_call, pickle_that_touches, write_job
from tests.processes import wait_until
from worker.jobs import NOT_JSON, ServiceJob

pytestmark = pytest.mark.e2e


def failure(redis: Redis, job_id: str) -> str | None:
    """The job's failure as RQ keeps it, once it has failed."""
    job = ServiceJob.fetch(job_id, connection=redis)
    result = job.latest_result()
    return result.exc_string if job.get_status() == "failed" and result else None


def test_crafted_jobs_run_no_code_of_theirs_and_fail_with_their_reasons(make_service, redis, tmp_path):
    service = make_service()
    by_pickle, by_os_system = tmp_path / "ran-by-pickle", tmp_path / "ran-by-os-system"
    write_job(redis, "bookInfoParser", "crafted-pickle", pickle_that_touches(by_pickle), retries_left=3)
    write_job(redis, "bookInfoParser", "crafted-os-system", json_call("os.system", f"touch {by_os_system}"))

    reasons = wait_until(
        lambda: all(reasons := [failure(redis, "crafted-pickle"), failure(redis, "crafted-os-system")]) and reasons,
        30,
        0.1,
        "both crafted jobs to fail",
    )
    assert NOT_JSON in reasons[0]
    assert "'os.system' is not a job of this service" in reasons[1]
    assert not by_pickle.exists() and not by_os_system.exists()
    assert service.workers[0].poll() is None  # the worker runs on
    # The dashboard reads them without loading the pickle either.
    assert requests.get(f"{service.url}/rqstatus/0/data/job/crafted-pickle.json", timeout=10).status_code == 200

    link = "https://www.goodreads.com/book/show/1234"
    assert requests.post(f"{service.url}/parseGoodreadsLinks", json=[link], timeout=10).status_code == 202

    def record() -> dict | None:
        answer = requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10)
        return answer.json() if answer.status_code == 200 else None

    assert wait_until(record, 30, 0.2, "the book to be stored")["book_id"] == "1234"
    assert not by_pickle.exists() and not by_os_system.exists()
