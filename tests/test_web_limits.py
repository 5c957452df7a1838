"""The web side's limits in process: POST budget, API tokens, the queue's bound, oversized
bodies, Redis refusing writes, its connections all busy, the trusted proxy hops, and the
dashboard's guard."""

from __future__ import annotations

import io
import json
import pickle
import threading
import time

import pytest
from redis import Redis
from rq import Queue

from app import REDIS_CONNECTIONS, create_app
from app.limits import from_trusted_proxies
from books.jobs import job_queue
from books.settings import ConfigError, Settings
from tests.processes import RedisServer, free_port

LINK = "https://www.goodreads.com/book/show/{}"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}


def post_links(client, *ids, **kwargs):
    return client.post("/parseGoodreadsLinks", json=[LINK.format(n) for n in ids], **kwargs)


def test_the_post_budget_refuses_with_retry_after_and_counts_per_client(configure):
    app = create_app(configure(POST_BUDGET="3", POST_BUDGET_WINDOW="60"))
    client = app.test_client()
    assert [post_links(client, n).status_code for n in (1, 2, 3)] == [202, 202, 202]
    refused = post_links(client, 4)
    assert refused.status_code == 429 and refused.json["error"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/getBookInfo", query_string={"url": LINK.format(1)}).status_code == 202  # reads are free
    assert post_links(client, 4, environ_base=OUTSIDE).status_code == 202  # another client has its own budget


def test_client_addresses_come_from_the_trusted_proxy_hops_only(configure):
    forwarded = [{"X-Forwarded-For": "198.51.100.1"}, {"X-Forwarded-For": "198.51.100.2"}]
    behind_proxy = create_app(
        configure(POST_BUDGET="1", TRUSTED_PROXY_HOPS="1", TRUSTED_PROXY_ADDRESSES="127.0.0.1")
    ).test_client()
    assert [post_links(behind_proxy, n, headers=h).status_code for n, h in zip((1, 2), forwarded, strict=True)] == [
        202,
        202,
    ]
    direct = create_app(configure(POST_BUDGET="1", TRUSTED_PROXY_HOPS="0", TRUSTED_PROXY_ADDRESSES="")).test_client()
    assert [post_links(direct, n, headers=h).status_code for n, h in zip((3, 4), forwarded, strict=True)] == [202, 429]


def test_forwarded_headers_from_a_peer_that_is_not_a_trusted_proxy_are_ignored(configure):
    """gunicorn reachable directly: a client forging X-Forwarded-For neither escapes its POST
    budget nor reaches the loopback-only dashboard as 127.0.0.1."""
    client = create_app(
        configure(POST_BUDGET="1", TRUSTED_PROXY_HOPS="1", TRUSTED_PROXY_ADDRESSES="10.0.0.0/8")
    ).test_client()
    forged = [{"X-Forwarded-For": f"198.51.100.{n}"} for n in (1, 2)]
    answers = [post_links(client, n, headers=h, environ_base=OUTSIDE).status_code for n, h in enumerate(forged, 1)]
    assert answers == [202, 429]
    as_loopback = client.get("/rqstatus/", headers={"X-Forwarded-For": "127.0.0.1"}, environ_base=OUTSIDE)
    assert as_loopback.status_code == 403 and as_loopback.json["error"] == "dashboard_local_only"
    through_proxy = {"REMOTE_ADDR": "10.1.2.3"}
    assert post_links(client, 3, headers=forged[0], environ_base=through_proxy).status_code == 202
    outside_via_proxy = client.get("/rqstatus/", headers={"X-Forwarded-For": "203.0.113.5"}, environ_base=through_proxy)
    assert outside_via_proxy.status_code == 403


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "hops", "trusted"),
    [
        ("10.0.0.1", "198.51.100.1", 1, True),
        ("203.0.113.5", "198.51.100.1", 1, False),
        ("10.0.0.1", "198.51.100.1, 10.0.0.2", 2, True),
        ("10.0.0.1", "198.51.100.1, 203.0.113.5", 2, False),  # the first proxy is not one of ours
        ("10.0.0.1", "", 2, False),
        ("not-an-address", "198.51.100.1", 1, False),
        ("10.0.0.1", "198.51.100.1, junk", 2, False),
    ],
)
def test_a_request_is_from_trusted_proxies_when_each_hop_is_one(peer, forwarded_for, hops, trusted):
    networks = Settings.from_env(
        {"TRUSTED_PROXY_HOPS": str(hops), "TRUSTED_PROXY_ADDRESSES": "10.0.0.0/8"}
    ).trusted_proxy_networks
    assert from_trusted_proxies(peer, forwarded_for, networks, hops) is trusted


def test_api_tokens_guard_posts_only(configure):
    client = create_app(configure(API_TOKENS="tok-alpha, tok-beta")).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic tok-beta"}):
        refused = post_links(client, 1, headers=headers)
        assert refused.status_code == 401 and refused.json["error"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert post_links(client, 1, headers={"Authorization": "Bearer tok-beta"}).status_code == 202
    assert client.get("/getBookInfo", query_string={"url": LINK.format(1)}).status_code == 202


def test_api_tokens_stay_out_of_the_settings_repr():
    assert "tok-secret" not in repr(Settings.from_env({"API_TOKENS": "tok-secret"}))
    with pytest.raises(ConfigError, match="API_TOKENS"):
        Settings.from_env({"API_TOKENS": "a b"})


def test_past_max_queued_books_a_post_queues_nothing(configure, redis):
    client = create_app(configure(MAX_QUEUED_BOOKS="5")).test_client()
    assert post_links(client, 1, 2, 3).status_code == 202
    refused = post_links(client, 4, 5, 6)
    assert refused.status_code == 503 and refused.json["error"] == "queue_full"
    assert "MAX_QUEUED_BOOKS" in refused.json["message"] and refused.headers["Retry-After"]
    assert redis.llen("rq:queue:bookInfoParser") == 3
    assert not redis.exists("rq:job:book-4", "rq:job:book-5", "rq:job:book-6")
    assert post_links(client, 4, 5).status_code == 202  # up to the bound


def test_books_put_aside_for_a_retry_or_a_pause_count_as_waiting(configure, redis, origin, run_jobs):
    client = create_app(configure(MAX_QUEUED_BOOKS="5", RETRY_INTERVALS="60")).test_client()
    origin.everyone("500")
    assert post_links(client, 1, 2, 3).status_code == 202
    run_jobs()  # each failed once: waiting a minute for its retry in RQ's scheduled set
    assert redis.llen("rq:queue:bookInfoParser") == 0
    assert redis.zcard("rq:scheduled:bookInfoParser") == 3
    refused = post_links(client, 4, 5, 6)
    assert refused.status_code == 503 and refused.json["error"] == "queue_full"
    assert refused.json["message"].startswith("3 books are waiting")
    assert post_links(client, 4, 5).status_code == 202


def test_oversized_bodies_answer_413_however_they_are_sent(configure):
    client = create_app(configure(MAX_REQUEST_BYTES="1000")).test_client()
    body = json.dumps([LINK.format(n) for n in range(100)]).encode()  # > 1,000 bytes
    with_length = client.post("/parseGoodreadsLinks", data=body, content_type="application/json")
    streamed = client.post("/parseGoodreadsLinks", input_stream=io.BytesIO(body), content_type="application/json")
    for response in (with_length, streamed):
        assert response.status_code == 413, response.json
        assert response.json["error"] == "request_entity_too_large"
    exactly = json.dumps([LINK.format(1)]).encode().ljust(1000)
    at_limit = client.post("/parseGoodreadsLinks", input_stream=io.BytesIO(exactly), content_type="application/json")
    assert at_limit.status_code == 202


def test_redis_out_of_memory_answers_503(configure, redis):
    client = create_app(configure()).test_client()
    redis.config_set("maxmemory", "1")
    try:
        refused = post_links(client, 1)
    finally:
        redis.config_set("maxmemory", "0")
    assert refused.status_code == 503 and refused.json["error"] == "redis_out_of_memory"
    assert refused.headers["Retry-After"]
    assert not redis.exists("rq:job:book-1")


def test_a_read_only_redis_replica_answers_503(configure):
    replica = RedisServer()
    replica.start()
    try:
        Redis(port=replica.port).replicaof("127.0.0.1", free_port())  # a primary that never answers
        client = create_app(configure(REDIS_URL=replica.url)).test_client()
        refused = post_links(client, 1)
        assert refused.status_code == 503 and refused.json["error"] == "redis_read_only"
    finally:
        replica.cleanup()


# The dashboard: who may see it, and which requests may change jobs.


def test_the_anonymous_dashboard_answers_loopback_clients_only(client):
    assert client.get("/rqstatus/").status_code == 200  # the test client comes from 127.0.0.1
    refused = client.get("/rqstatus/", environ_base=OUTSIDE)
    assert refused.status_code == 403 and refused.json["error"] == "dashboard_local_only"
    assert client.get("/rqstatus/0/data/queues.json", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}, 200),
        ({"Origin": "http://localhost"}, 200),
        ({}, 200),  # no browser: the password (here, loopback) alone
    ],
)
def test_dashboard_actions_refuse_cross_site_requests(client, headers, status):
    response = client.post("/rqstatus/requeue/bookInfoParser", headers=headers)
    assert response.status_code == status
    if status == 403:
        assert response.json["error"] == "cross_site_request"


def test_requeue_takes_post_only(client):
    refused = client.get("/rqstatus/requeue/bookInfoParser")
    assert refused.status_code == 405 and refused.headers["Allow"] == "POST"


def test_wrong_dashboard_passwords_slow_down_per_client(configure):
    client = create_app(
        configure(RQ_DASHBOARD_USERNAME="op", RQ_DASHBOARD_PASSWORD="right", DASHBOARD_LOGIN_FAILURES="2")
    ).test_client()
    assert [client.get("/rqstatus/", auth=("op", "wrong")).status_code for _ in range(3)] == [401, 401, 401]
    locked = client.get("/rqstatus/", auth=("op", "right"))
    assert locked.status_code == 429 and locked.json["error"] == "too_many_failed_logins"
    assert 1 <= int(locked.headers["Retry-After"]) <= 300
    assert client.get("/rqstatus/", auth=("op", "right"), environ_base=OUTSIDE).status_code == 200


def dashboard_app(configure, **env):
    return create_app(configure(RQ_DASHBOARD_USERNAME="op", RQ_DASHBOARD_PASSWORD="right", **env))


def test_wrong_passwords_from_many_clients_spend_a_global_budget(configure):
    app = dashboard_app(configure, DASHBOARD_GLOBAL_FAILURES="3", DASHBOARD_LOGIN_FAILURES="100")
    client = app.test_client()
    guesses = [
        client.get("/rqstatus/", auth=("op", "guess"), environ_base={"REMOTE_ADDR": f"203.0.113.{n}"}).status_code
        for n in range(1, 5)
    ]
    assert guesses == [401, 401, 401, 429]  # the budget of three spent, the fourth address is not checked
    elsewhere = client.get("/rqstatus/", auth=("op", "right"), environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert elsewhere.status_code == 429 and elsewhere.json["message"].startswith("too many wrong passwords from all")
    assert 1 <= int(elsewhere.headers["Retry-After"]) <= 60


def test_a_browser_that_logged_in_is_not_locked_out_by_its_neighbours_or_the_crowd(configure):
    app = dashboard_app(configure, DASHBOARD_LOGIN_FAILURES="1", DASHBOARD_GLOBAL_FAILURES="4")
    operator, neighbour = app.test_client(), app.test_client()  # one address: the same NAT
    first = operator.get("/rqstatus/", auth=("op", "right"))
    assert first.status_code == 200 and "HttpOnly" in first.headers["Set-Cookie"]
    assert "Path=/rqstatus" in first.headers["Set-Cookie"] and "SameSite=Strict" in first.headers["Set-Cookie"]
    assert [neighbour.get("/rqstatus/", auth=("op", "guess")).status_code for _ in range(3)] == [401, 401, 429]
    assert neighbour.get("/rqstatus/", auth=("op", "right")).status_code == 429  # a new browser waits
    assert operator.get("/rqstatus/", auth=("op", "right")).status_code == 200
    for n in range(1, 4):  # the crowd spends the global budget
        operator_less = app.test_client()
        operator_less.get("/rqstatus/", auth=("op", "guess"), environ_base={"REMOTE_ADDR": f"203.0.113.{n}"})
    assert neighbour.get("/rqstatus/", auth=("op", "right"), environ_base=OUTSIDE).status_code == 429
    assert operator.get("/rqstatus/", auth=("op", "right")).status_code == 200
    assert operator.get("/rqstatus/", auth=("op", "guess")).status_code == 401  # the cookie is no password


def test_the_operator_cookie_is_signed_dated_and_tied_to_the_password(configure):
    from app.dashboard import known_operator, operator_token

    settings = configure(RQ_DASHBOARD_USERNAME="op", RQ_DASHBOARD_PASSWORD="right", DASHBOARD_OPERATOR_TTL="100")
    token = operator_token(settings, 1000)
    assert known_operator(settings, token, 1050) and known_operator(settings, token, 1100)
    assert not known_operator(settings, token, 1101)  # too old
    assert not known_operator(settings, token, 999)  # from the future
    assert not known_operator(settings, token[:-1] + ("0" if token[-1] != "0" else "1"), 1050)
    assert not known_operator(settings, f"1050.{token.partition('.')[2]}", 1050)  # re-dated
    for junk in (None, "", "abc", "1000", "1000.", "٣.x"):
        assert not known_operator(settings, junk, 1050)
    new_password = configure(RQ_DASHBOARD_USERNAME="op", RQ_DASHBOARD_PASSWORD="changed")
    assert not known_operator(new_password, token, 1050)


def test_the_dashboard_does_not_requeue_a_job_whose_data_it_refuses(client, redis, tmp_path):
    marker = tmp_path / "ran"
    queue = job_queue(redis, "bookInfoParser")
    for job_id in ("book-1", "book-2"):
        job = queue.enqueue("worker.tasks.parse_book", job_id[5:], job_id=job_id)
        queue.remove(job)
        job.set_status("failed")
        job.failed_job_registry.add(job, ttl=600)
    redis.hset("rq:job:book-1", "data", pickle.dumps(RunsCode(str(marker))))  # its meta stays plain
    refused = client.post("/rqstatus/job/book-1/requeue")
    assert refused.status_code == 422 and refused.json["error"] == "unsafe_job_data"
    assert client.post("/rqstatus/job/book-2/requeue").status_code == 200
    assert queue.job_ids == ["book-2"]
    assert queue.failed_job_registry.get_job_ids() == ["book-1"] and not marker.exists()


class RunsCode:
    """Unpickling this creates a file: what a crafted job hash could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_the_dashboard_does_not_run_code_from_a_crafted_job(client, redis, tmp_path):
    marker = tmp_path / "ran"
    job = Queue("bookInfoParser", connection=redis).enqueue("worker.tasks.parse_book", "1", job_id="book-1")
    job.set_status("failed")
    job.failed_job_registry.add(job, ttl=600)
    redis.hset(
        job.key, mapping={"meta": pickle.dumps(RunsCode(str(marker))), "data": pickle.dumps(RunsCode(str(marker)))}
    )
    for path in (
        "/rqstatus/0/view/job/book-1",
        "/rqstatus/0/data/job/book-1.json",
        "/rqstatus/0/data/jobs/bookInfoParser/failed/8/asc/1.json",
        "/rqstatus/0/data/jobs/bookInfoParser/queued/8/asc/1.json",
        "/rqstatus/0/data/workers.json",
    ):
        response = client.get(path)
        assert response.status_code in (200, 422), (path, response.status_code)
    assert client.post("/rqstatus/job/book-1/requeue").status_code in (200, 422)
    assert client.post("/rqstatus/requeue/bookInfoParser").status_code in (200, 422)
    assert not marker.exists()


def test_a_lookup_waits_for_a_redis_connection_when_every_one_is_busy(app):
    """A gevent worker serves more requests at once than it keeps Redis connections: one more
    waits for a connection to come free, and is not answered 503 "storage unreachable"."""
    pool = app.extensions["book_queue"].redis.connection_pool
    busy = [pool.get_connection() for _ in range(REDIS_CONNECTIONS)]
    freed = threading.Timer(0.3, pool.release, [busy.pop()])
    freed.start()
    started = time.monotonic()
    try:
        response = app.test_client().get("/getBookInfo", query_string={"url": LINK.format(1)})
        waited = time.monotonic() - started
    finally:
        freed.join()
        for connection in busy:
            pool.release(connection)
    assert response.status_code == 404, response.json
    assert 0.25 <= waited < 3


def test_exports_stream_at_most_max_exports_at_once(configure, redis):
    client = create_app(configure(MAX_EXPORTS="2")).test_client()
    first, second = client.get("/books"), client.get("/books?format=csv")
    assert (first.status_code, second.status_code) == (200, 200)
    refused = client.get("/books")
    assert refused.status_code == 429 and refused.json["error"] == "too_many_exports"
    assert refused.headers["Retry-After"] == "10"
    first.close()  # the stream ended (or its client went away)
    third = client.get("/books")
    assert third.status_code == 200
    for response in (second, third):
        response.close()
    missing = client.get("/batches/0123456789abcdef0123456789abcdef/books")
    assert missing.status_code == 404  # refused before streaming: its place is given back
    assert [client.get("/books").status_code for _ in range(2)] == [200, 200]


def test_one_large_post_is_parsed_at_a_time_per_client(configure, redis):
    from books.slots import Slots

    client = create_app(configure(LARGE_POST_BYTES="200")).test_client()
    large = [LINK.format(n) for n in range(1, 11)]  # about 420 bytes of JSON
    turns = Slots(redis, "goodreads:large-post", 1, 60)
    assert turns.take("127.0.0.1", "another-post")  # the client's other large POST, being parsed
    refused = client.post("/parseGoodreadsLinks", json=large)
    assert refused.status_code == 429 and refused.json["error"] == "large_post_in_progress"
    assert refused.headers["Retry-After"] == "1"
    chunked = client.post(
        "/parseGoodreadsLinks",
        input_stream=io.BytesIO(json.dumps([LINK.format(1)]).encode()),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"},
    )
    assert chunked.status_code == 429  # a body of unknown length may be large
    assert post_links(client, 1).status_code == 202  # small bodies go on
    assert client.post("/parseGoodreadsLinks", json=large, environ_base=OUTSIDE).status_code == 202  # another client
    turns.give_back("127.0.0.1", "another-post")
    assert client.post("/parseGoodreadsLinks", json=large).status_code == 202
    assert redis.zcard(turns.key("127.0.0.1")) == 0  # its turn given back
    assert redis.llen("rq:queue:bookInfoParser") == 10
