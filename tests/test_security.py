"""The worker fetches nothing but book pages built from digits; no secret reaches the logs."""

from __future__ import annotations

import pytest
import requests

from books.jobs import job_queue
from tests.processes import wait_until

pytestmark = pytest.mark.e2e
PASSWORD = "pa55-word-that-must-not-be-logged"


@pytest.mark.parametrize(
    "book_id",
    [
        "../../user/sign_in",
        "1/../../admin",
        "1@evil.example",
        "1?x=http://a",
        "http://evil.example/",
        "１２",
        "0",
        "12 34",
        "-1",
    ],
)
def test_a_job_with_a_crafted_book_id_fetches_nothing(make_service, origin, redis, book_id):
    make_service(RETRY_MAX="0")
    job = job_queue(redis, "bookInfoParser").enqueue("worker.tasks.parse_book", book_id)
    wait_until(lambda: job.get_status(refresh=True) == "failed", 30, 0.1, "the job to fail")
    assert origin.fetches() == []
    assert redis.keys("goodreads:book:*") == []


def test_no_secret_appears_in_the_logs(make_service, origin):
    service = make_service(RQ_DASHBOARD_USERNAME="operator", RQ_DASHBOARD_PASSWORD=PASSWORD)
    requests.get(f"{service.url}/rqstatus/", auth=("operator", PASSWORD), timeout=10)
    requests.get(f"{service.url}/rqstatus/", auth=("operator", PASSWORD + "x"), timeout=10)
    requests.post(f"{service.url}/parseGoodreadsLinks", json=["goodreads.com/book/show/9"], timeout=10)
    wait_until(
        lambda: (
            requests.get(
                f"{service.url}/getBookInfo", params={"url": "goodreads.com/book/show/9"}, timeout=10
            ).status_code
            == 200
        ),
        30,
        0.2,
        "the book",
    )
    logs = service.logs()
    assert "rqstatus" in logs and "book 9" in logs  # the logs were read
    assert PASSWORD not in logs
