"""The web side's limits through gunicorn: POST budget, API tokens, the queue's bound, a
chunked oversized body, Redis out of memory, and the dashboard's guard."""

from __future__ import annotations

import pickle

import pytest
import requests
from redis import Redis
from rq import Queue

from tests.processes import RedisServer, Service

pytestmark = pytest.mark.e2e
LINK = "https://www.goodreads.com/book/show/{}"
USER, PASSWORD = "operator", "s3cret-for-tests"
TOKEN = "tok-that-must-not-be-logged"


def post(service: Service, *ids: int, **kwargs) -> requests.Response:
    return requests.post(f"{service.url}/parseGoodreadsLinks", json=[LINK.format(n) for n in ids], timeout=30, **kwargs)


def test_posts_spend_a_per_client_budget_and_the_queue_is_bounded(make_service, redis):
    service = make_service(workers=0, WEB_CONCURRENCY="2", POST_BUDGET="4", MAX_QUEUED_BOOKS="3")
    assert post(service, 1, 2).status_code == 202
    full = post(service, 3, 4)
    assert full.status_code == 503 and full.json()["error"] == "queue_full" and full.headers["Retry-After"]
    assert redis.llen("rq:queue:bookInfoParser") == 2 and not redis.exists("rq:job:book-3", "rq:job:book-4")
    assert [post(service, 1).status_code for _ in range(2)] == [202, 202]  # already queued: room; 3rd and 4th POST
    refused = post(service, 5)
    assert refused.status_code == 429 and refused.json()["error"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_api_tokens_and_a_chunked_oversized_body(make_service):
    service = make_service(workers=0, API_TOKENS=f"other-token,{TOKEN}")
    anonymous = post(service, 1)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    assert post(service, 1, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 202

    def twenty_megabytes():
        yield b'["'
        for _ in range(20 * 16):
            yield b"a" * 65536
        yield b'"]'

    chunked = requests.post(
        f"{service.url}/parseGoodreadsLinks",
        data=twenty_megabytes(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert chunked.request.headers["Transfer-Encoding"] == "chunked"
    assert chunked.status_code == 413 and chunked.json()["error"] == "request_entity_too_large"
    service.stop()
    assert TOKEN not in service.logs() and "parseGoodreadsLinks" in service.logs()


def test_a_post_answers_503_when_redis_is_out_of_memory(origin, tmp_path):
    redis_server = RedisServer()
    redis_server.start()
    service = Service(redis_server.url, origin.url, tmp_path)
    try:
        service.start_web()
        redis = Redis(port=redis_server.port)
        redis.config_set("maxmemory-policy", "noeviction")
        redis.config_set("maxmemory", "1")
        refused = post(service, 1)
        assert refused.status_code == 503 and refused.json()["error"] == "redis_out_of_memory"
        assert refused.headers["Retry-After"] and not redis.exists("rq:job:book-1")
        lookup = requests.get(f"{service.url}/getBookInfo", params={"url": LINK.format(1)}, timeout=10)
        assert lookup.status_code == 404  # reads go on
    finally:
        service.stop()
        redis_server.cleanup()


@pytest.fixture
def dashboard(make_service):
    return make_service(workers=0, RQ_DASHBOARD_USERNAME=USER, RQ_DASHBOARD_PASSWORD=PASSWORD)


def test_dashboard_actions_are_post_only_and_same_origin(dashboard, redis):
    auth = (USER, PASSWORD)
    url = f"{dashboard.url}/rqstatus/requeue/bookInfoParser"
    got = requests.get(url, auth=auth, timeout=10)
    assert got.status_code == 405 and got.headers["Allow"] == "POST"
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        cross_site = requests.post(url, auth=auth, headers=headers, timeout=10)
        assert cross_site.status_code == 403 and cross_site.json()["error"] == "cross_site_request"
    same_origin = requests.post(
        url, auth=auth, headers={"Origin": dashboard.url, "Sec-Fetch-Site": "same-origin"}, timeout=10
    )
    assert same_origin.status_code == 200 and same_origin.json()["status"] == "OK"


def test_wrong_passwords_slow_down(dashboard):
    url = f"{dashboard.url}/rqstatus/"
    wrong = [requests.get(url, auth=(USER, "guess"), timeout=10).status_code for _ in range(6)]
    assert wrong == [401] * 6  # five free failures, and the sixth locks the client out
    locked = requests.get(url, auth=(USER, PASSWORD), timeout=10)
    assert locked.status_code == 429 and locked.json()["error"] == "too_many_failed_logins"
    assert int(locked.headers["Retry-After"]) >= 1


class RunsCode:
    """Unpickling this creates a file: what a crafted job hash could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_job_runs_no_code_in_the_web_process(dashboard, redis, tmp_path):
    marker = tmp_path / "ran"
    job = Queue("bookInfoParser", connection=redis).enqueue("worker.tasks.parse_book", "1", job_id="book-1")
    crafted = pickle.dumps(RunsCode(str(marker)))
    redis.hset(job.key, mapping={"meta": crafted, "data": crafted})
    auth = (USER, PASSWORD)
    for path in (
        "/rqstatus/0/view/job/book-1",
        "/rqstatus/0/data/job/book-1.json",
        "/rqstatus/0/data/jobs/bookInfoParser/queued/8/asc/1.json",
    ):
        response = requests.get(f"{dashboard.url}{path}", auth=auth, timeout=10)
        assert response.status_code in (200, 422), (path, response.status_code, response.text[:200])
    assert not marker.exists()
