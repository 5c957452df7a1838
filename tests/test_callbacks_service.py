"""Callbacks end to end: the real web and worker processes call a local listener back, signed,
retry after a 500, deliver once, and refuse a host that is not allowed."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.listener import Listener, verified
from tests.processes import wait_until

pytestmark = pytest.mark.e2e

SECRET = "a-callback-secret"
CALLBACKS_ON = {
    "CALLBACK_SECRET": SECRET,
    "CALLBACK_CHECK_INTERVAL": "1",
    "CALLBACK_RETRY_INTERVALS": "1,1,1",
}


def post(service, links, callback_url):
    return requests.post(
        f"{service.url}/parseGoodreadsLinks", params={"callback_url": callback_url}, json=links, timeout=10
    )


def test_a_finished_batch_is_called_back_signed_retried_after_a_500_and_delivered_once(make_service, origin):
    origin.behave("802", "404")
    with Listener(500, 200) as listener:
        service = make_service(workers=2, CALLBACK_ALLOWED_HOSTS=f"127.0.0.1:{listener.port}", **CALLBACKS_ON)
        links = ["goodreads.com/book/show/801", "goodreads.com/book/show/802", "https://example.com/x"]
        answer = post(service, links, f"{listener.url}/batch-done")
        assert answer.status_code == 202
        batch_id = answer.json()["batch_id"]
        wait_until(lambda: len(listener.received) >= 2, 40, 0.1, "the callback and its retry")
        time.sleep(4)  # several checks and the retry interval pass: nothing is sent again
        received = list(listener.received)
    assert len(received) == 2 and received[0].body == received[1].body
    delivered = received[1]
    assert verified(delivered, SECRET)
    payload = json.loads(delivered.body)
    assert payload["batch_id"] == batch_id
    assert payload["batch_url"] == f"{service.url}/batches/{batch_id}"
    assert payload["finished"] is True
    assert {status: count for status, count in payload["counts"].items() if count} == {
        "stored": 1,
        "not_found": 1,
        "rejected": 1,
    }
    assert requests.get(payload["batch_url"], timeout=10).json()["finished"] is True


def test_a_callback_to_a_host_not_allowed_is_refused(make_service):
    service = make_service(workers=0, CALLBACK_ALLOWED_HOSTS="127.0.0.1", **CALLBACKS_ON)
    for url, reason in (
        ("http://10.0.0.7:6379/", "not '10.0.0.7:6379'"),
        ("http://localhost/", "not 'localhost:80'"),
        (f"http://127.0.0.1:{service.port}/rqstatus/", "this service's own web"),
        ("http://me:pw@127.0.0.1/", "must not hold a user name or password"),
        ("gopher://127.0.0.1/", "must start with http:// or https://"),
    ):
        answer = post(service, ["goodreads.com/book/show/811"], url)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_callback_url" and reason in answer.json()["message"]
    assert requests.get(f"{service.url}/readyz", timeout=10).json()["queue_depth"] == 0
