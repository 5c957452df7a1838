"""Bad input against the running app: every answer is a 4xx JSON with a reason, nothing is stored."""

from __future__ import annotations

import json
import os
import pickle
import time

import pytest
import requests

from tests.processes import Service, free_port

pytestmark = pytest.mark.e2e
BOOK = "https://www.goodreads.com/book/show/5907"
POST_BODIES = [
    ("not json", b"hello", 400),
    ("truncated json", b'["https://www.goodreads.com/book/show/5907"', 400),
    ("invalid utf-8", b'["\xff\xfe"]', 400),
    ("empty body", b"", 400),
    ("null", b"null", 400),
    ("a number", b"42", 400),
    ("a string", json.dumps(BOOK).encode(), 400),
    ("an object", json.dumps({"links": [BOOK]}).encode(), 400),
    ("true", b"true", 400),
    ("empty array", b"[]", 400),
    ("array of numbers", b"[1, 2, 3]", 400),
    ("array of nulls", b"[null, null]", 400),
    ("array of objects", b'[{"url": "x"}]', 400),
    ("nested arrays", json.dumps([[BOOK]]).encode(), 400),
    ("deeply nested", b"[" * 100000 + b"]" * 100000, 400),
    ("huge number", b"[" + b"9" * 5000 + b"]", 400),
    ("NaN", b"[NaN]", 400),
    ("author link", json.dumps(["https://www.goodreads.com/author/show/1"]).encode(), 400),
    ("lookalike host", json.dumps(["https://goodreads.com.evil.example/book/show/1"]).encode(), 400),
    ("userinfo", json.dumps(["https://user:pw@www.goodreads.com/book/show/1"]).encode(), 400),
    ("port", json.dumps(["https://www.goodreads.com:444/book/show/1"]).encode(), 400),
    ("IDN host", json.dumps(["https://www.gööd.com/book/show/1"]).encode(), 400),
    ("javascript scheme", json.dumps(["javascript:alert(1)//www.goodreads.com/book/show/1"]).encode(), 400),
    ("file scheme", json.dumps(["file:///book/show/1"]).encode(), 400),
    ("control characters", json.dumps(["https://www.goodreads.com/book/show/1\r\nX: y"]).encode(), 400),
    ("percent-encoded id", json.dumps(["https://www.goodreads.com/book/show/%35%39"]).encode(), 400),
    ("unicode digits", json.dumps(["https://www.goodreads.com/book/show/١٢"]).encode(), 400),
    ("a 100 KB link", json.dumps(["https://www.goodreads.com/book/show/1?" + "a" * 100_000]).encode(), 400),
    ("10,001 links", json.dumps([BOOK] * 10_001).encode(), 413),
    ("10 MB body", b'["' + b"a" * (10 * 1024 * 1024) + b'"]', 413),
]


@pytest.fixture(scope="module")
def service(redis_server, tmp_path_factory):
    from tests.origin import Origin

    origin = Origin()
    origin.start()
    running = Service(redis_server.url, origin.url, tmp_path_factory.mktemp("logs"))
    running.start_web()
    yield running
    running.stop()
    origin.stop()


@pytest.fixture
def clean_redis(redis):
    yield redis
    # The client's POST budget counts refused requests too (and expires after its window).
    keys = [key for key in redis.keys("*") if not key.startswith((b"rq:workers", b"goodreads:budget:post:"))]
    assert keys == [], "a refused request left keys in Redis"


def assert_json_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] and body["message"]
    return body


@pytest.mark.parametrize(("name", "body", "status"), POST_BODIES, ids=[case[0] for case in POST_BODIES])
def test_bad_posts_get_a_json_4xx_with_a_reason(service, clean_redis, name, body, status):
    response = requests.post(
        f"{service.url}/parseGoodreadsLinks", data=body, timeout=30, headers={"Content-Type": "application/json"}
    )
    assert_json_error(response, status)


@pytest.mark.parametrize(
    ("name", "params", "status"),
    [
        ("no url", {}, 400),
        ("empty url", {"url": ""}, 400),
        ("not a goodreads link", {"url": "https://example.com/book/show/1"}, 400),
        ("author link", {"url": "https://www.goodreads.com/author/show/1"}, 400),
        ("repeated url", [("url", BOOK), ("url", BOOK)], 400),
        ("bad refresh flag", None, 400),
    ],
    ids=lambda case: case if isinstance(case, str) else None,
)
def test_bad_lookups_get_a_json_400(service, clean_redis, name, params, status):
    if params is None:
        response = requests.post(f"{service.url}/parseGoodreadsLinks?refresh=maybe", json=[BOOK], timeout=10)
    else:
        response = requests.get(f"{service.url}/getBookInfo", params=params, timeout=10)
    assert_json_error(response, status)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/parseGoodreadsLinks", 405),
        ("PUT", "/parseGoodreadsLinks", 405),
        ("DELETE", "/getBookInfo", 405),
        ("POST", "/getBookInfo", 405),
        ("GET", "/nope", 404),
        ("GET", "/getBookInfo/extra", 404),
        ("GET", "/getBookInfo?url=" + "a" * 6000, 400),
    ],
)
def test_wrong_methods_and_paths_get_json(service, clean_redis, method, path, status):
    response = requests.request(method, f"{service.url}{path}", timeout=10)
    assert_json_error(response, status)


def test_a_huge_query_string_is_refused_by_gunicorn_without_html(service):
    response = requests.get(f"{service.url}/getBookInfo?url=" + "a" * 9000, timeout=10)
    assert_json_error(response, 414)


def test_links_are_accepted_without_a_json_content_type(service, redis):
    response = requests.post(
        f"{service.url}/parseGoodreadsLinks",
        data=json.dumps([BOOK]),
        timeout=10,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 202
    assert response.json()["results"][0]["book_id"] == "5907"


def test_a_crafted_pickle_in_redis_is_refused_and_runs_nothing(service, redis):
    class RunsCode:
        def __reduce__(self):
            return (os.system, ("touch /tmp/pwned-through-the-api",))

    if os.path.exists("/tmp/pwned-through-the-api"):
        os.remove("/tmp/pwned-through-the-api")
    redis.set("goodreads:book:66", pickle.dumps(RunsCode()))
    response = requests.get(f"{service.url}/getBookInfo", params={"url": "goodreads.com/book/show/66"}, timeout=10)
    assert response.status_code == 502
    assert response.json()["status"] == "failed"
    assert "not plain data" in response.json()["reason"]
    assert not os.path.exists("/tmp/pwned-through-the-api")


def test_redis_unreachable_gives_503_json_quickly(tmp_path):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    service = Service(dead_redis, "http://127.0.0.1:9", tmp_path)
    service.start_web()
    try:
        for method, path, kwargs in [
            ("POST", "/parseGoodreadsLinks", {"json": [BOOK]}),
            ("GET", "/getBookInfo", {"params": {"url": BOOK}}),
            ("GET", "/readyz", {}),
            ("GET", "/rqstatus/", {}),
        ]:
            started = time.monotonic()
            response = requests.request(method, f"{service.url}{path}", timeout=15, **kwargs)
            assert time.monotonic() - started < 5
            assert_json_error(response, 503)
        assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
    finally:
        service.stop()
