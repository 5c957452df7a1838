"""Callbacks in process: which URLs are allowed, the signature, the claim, the completion check,
delivery, retry and no redirect (the jobs run in RQ's SimpleWorker against the tests' Redis)."""

from __future__ import annotations

import json
import re
import time

import pytest
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from app import create_app
from books.callbacks import Callbacks, deliver_once, host_slots, refusal, signature
from books.jobs import job_queue
from books.settings import ConfigError, Settings
from books.slots import Slots
from tests.listener import DripListener, Listener, verified
from tests.processes import free_port, wait_until
from worker.jobs import ServiceJob

ALLOWED = frozenset({("127.0.0.1", 9), ("hooks.example.com", 80), ("hooks.example.com", 443)})
# This service's own addresses: Redis on the loopback, the web on port 5000.
OWN = [("127.0.0.1", 6379), ("0.0.0.0", 5000)]
SECRET = "test-secret"
LINK = "https://www.goodreads.com/book/show/11"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://hooks.example.com/done", None),
        ("http://HOOKS.example.com/done?x=1", None),
        ("http://hooks.example.com:443/done", None),
        ("http://127.0.0.1:9/done", None),
        ("http://hooks.example.com:8443/done", "not 'hooks.example.com:8443'"),
        ("http://127.0.0.1/done", "not '127.0.0.1:80'"),
        ("http://127.0.0.1:6379/", "this service's own web or Redis address"),
        ("http://localhost:6379/", "this service's own web or Redis address"),
        ("http://127.0.0.2:5000/rqstatus/requeue/x", "this service's own web or Redis address"),
        ("http://[::1]:5000/rqstatus/", "this service's own web or Redis address"),
        ("ftp://hooks.example.com/done", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("hooks.example.com/done", "must start with http:// or https://"),
        ("https://user:pw@hooks.example.com/done", "must not hold a user name or password"),
        ("https://hooks.example.com@10.0.0.1/done", "must not hold a user name or password"),
        ("https://evil.example.com/done", "not 'evil.example.com:443'"),
        ("https://hooks.example.com.evil.net/", "not 'hooks.example.com.evil.net:443'"),
        ("http://localhost/admin", "not 'localhost:80'"),
        ("http://169.254.169.254/latest/meta-data", "not '169.254.169.254:80'"),
        ("http:///nohost", "not 'an empty host'"),
        ("http://127.0.0.1:port/", "is not a valid URL"),
        ("http://[::1/", "is not a valid URL"),
        ("https://hooks.example.com/a b", "one line"),
        ("https://hooks.example.com/\r\nX-Evil: 1", "one line"),
        ("https://hooks.example.com/" + "a" * 2000, "one line of at most 2000"),
    ],
)
def test_callback_urls_are_refused_unless_http_to_an_allowed_host_and_port(url, reason):
    found = refusal(url, ALLOWED, OWN)
    assert found is None if reason is None else reason in found


def test_callbacks_are_off_without_allowed_hosts():
    assert "callbacks are off" in refusal("https://hooks.example.com/", frozenset())


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body_in_hex():
    # as `printf '1700000000.{"batch_id":"b"}' | openssl dgst -sha256 -hmac Jefe` computes it
    assert signature(b'{"batch_id":"b"}', "Jefe", 1700000000) == (
        "sha256=f27b7b5cee4af86089f335a8811a3b7d9e62fa3b96af43483963853694ddec63"
    )


def test_allowed_hosts_need_a_secret_and_sane_numbers():
    with pytest.raises(ConfigError, match="CALLBACK_SECRET"):
        Settings.from_env({"CALLBACK_ALLOWED_HOSTS": "hooks.example.com"})
    with pytest.raises(ConfigError, match="CALLBACK_RETRY_INTERVALS"):
        Settings.from_env({"CALLBACK_RETRY_INTERVALS": "5,-1"})
    with pytest.raises(ConfigError, match="CALLBACK_CHECK_INTERVAL"):
        Settings.from_env({"CALLBACK_CHECK_INTERVAL": "0"})
    for entry in ("hooks.example.com:http", "hooks.example.com:0", "[::1]8080", "a:1:2:"):
        with pytest.raises(ConfigError, match=f"CALLBACK_ALLOWED_HOSTS: '{re.escape(entry)}' is not a host"):
            Settings.from_env({"CALLBACK_ALLOWED_HOSTS": entry, "CALLBACK_SECRET": "s"})
    settings = Settings.from_env(
        {"CALLBACK_ALLOWED_HOSTS": " Hooks.Example.com, 127.0.0.1:9 ,", "CALLBACK_SECRET": "s"}
    )
    assert settings.callback_hosts == ALLOWED
    ipv6 = Settings.from_env({"CALLBACK_ALLOWED_HOSTS": "[::1]:8080,fe80::1", "CALLBACK_SECRET": "s"})
    assert ipv6.callback_hosts == {("::1", 8080), ("fe80::1", 80), ("fe80::1", 443)}


def test_redis_addresses_are_the_server_and_its_sentinels():
    assert Settings.from_env({"REDIS_URL": "redis://:pw@Redis:6380/1"}).redis_addresses == {("redis", 6380)}
    assert Settings.from_env({"REDIS_URL": "redis://cache/0"}).redis_addresses == {("cache", 6379)}
    assert Settings.from_env({"REDIS_URL": "unix:///run/redis.sock"}).redis_addresses == set()
    sentinels = {"REDIS_SENTINELS": "10.0.0.5:26379", "REDIS_SENTINEL_MASTER": "m"}
    assert Settings.from_env(sentinels).redis_addresses == {("10.0.0.5", 26379), ("127.0.0.1", 6379)}


@pytest.fixture
def callback_app(configure):
    def make(listener: Listener | None, **env: str):
        allowed = f"127.0.0.1:{listener.port}" if listener else "127.0.0.1"
        settings = configure(**{"CALLBACK_ALLOWED_HOSTS": allowed, "CALLBACK_SECRET": SECRET, **env})
        app = create_app(settings)
        return app, settings

    made = []

    def tracked(listener: Listener | None = None, **env: str):
        """The app, calling back ``listener`` (at its port) or 127.0.0.1 on the default ports."""
        app, settings = make(listener, **env)
        made.append(app)
        return app.test_client(), settings

    yield tracked
    for app in made:
        app.extensions["record_cache"].close()


def post(client, book_ids, callback_url):
    links = [f"https://www.goodreads.com/book/show/{book_id}" for book_id in book_ids]
    return client.post("/parseGoodreadsLinks", query_string={"callback_url": callback_url}, json=links)


def test_the_parameter_is_refused_while_callbacks_are_off(client, redis):
    answer = post(client, ["11"], "http://127.0.0.1:9/done")
    assert answer.status_code == 400
    assert answer.json == {
        "error": "invalid_callback_url",
        "message": "callbacks are off on this service (CALLBACK_ALLOWED_HOSTS is not set)",
    }
    assert redis.keys("rq:job:*") == []  # nothing queued


def test_a_host_not_allowed_is_refused_with_its_reason_and_nothing_is_queued(callback_app, redis):
    client, _ = callback_app()
    answer = post(client, ["11"], "http://10.0.0.5/done")
    assert answer.status_code == 400
    assert answer.json["message"] == (
        "callbacks may only go to the hosts and ports in CALLBACK_ALLOWED_HOSTS, not '10.0.0.5:80'"
    )
    assert redis.keys("rq:job:*") == []


def test_the_web_s_own_port_and_redis_are_refused_even_when_allowed(callback_app, redis_server, redis):
    """The operator allows the loopback's web and Redis ports by mistake: a callback would reach
    the loopback-only dashboard, or speak to Redis."""
    client, _ = callback_app(CALLBACK_ALLOWED_HOSTS=f"127.0.0.1:5000,localhost:{redis_server.port},127.0.0.1:80")
    for url in ("http://127.0.0.1:5000/rqstatus/requeue/x", f"http://localhost:{redis_server.port}/"):
        answer = client.post(
            "/parseGoodreadsLinks", query_string={"callback_url": url}, json=[LINK], base_url="http://0.0.0.0:5000/"
        )
        assert answer.status_code == 400 and answer.json["message"] == (
            "callbacks never go to this service's own web or Redis address"
        )
    by_its_name = client.post(
        "/parseGoodreadsLinks", query_string={"callback_url": "http://127.0.0.1/x"}, json=[LINK]
    )  # the test client's web: localhost, port 80
    assert by_its_name.status_code == 400 and "own web" in by_its_name.json["message"]
    assert redis.keys("rq:job:*") == []


def verify(received, secret=SECRET):
    assert verified(received, secret)
    assert received.headers["Content-Type"] == "application/json"
    return json.loads(received.body)


def test_a_batch_whose_books_settle_is_called_back_once_signed(callback_app, run_jobs, origin, redis):
    listener = Listener()
    client, settings = callback_app(listener)
    origin.behave("32", "404")
    with listener:
        answer = post(client, ["31", "32", "31"], f"{listener.url}/hook?team=data")
        batch_id = answer.json["batch_id"]
        run_jobs(settings.control_queue_name, settings.callback_queue_name)
        assert listener.received == []  # the books are still queued: the check waits
        pending = Callbacks(redis, settings.key_prefix, settings.batch_ttl).pending(batch_id, 10)
        assert pending == ["31", "32"]
        run_jobs()  # the book jobs
        from worker.callbacks import check_callbacks

        job_queue(redis, settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name, settings.callback_queue_name)
        run_jobs(settings.control_queue_name, settings.callback_queue_name)  # a second check finds nothing to do
        assert len(listener.received) == 1
        received = listener.received[0]
    assert received.path == "/hook?team=data"
    payload = verify(received)
    assert payload["batch_id"] == batch_id
    assert payload["batch_url"] == f"http://localhost/batches/{batch_id}"
    assert payload["finished"] is True
    assert payload["counts"]["stored"] == 1 and payload["counts"]["not_found"] == 1
    assert sum(payload["counts"].values()) == 2


def test_a_batch_already_stored_is_called_back_at_once(callback_app, run_jobs, redis):
    listener = Listener()
    client, settings = callback_app(listener)
    with listener:
        post(client, ["41"], f"{listener.url}/first")
        run_jobs()
        run_jobs(settings.control_queue_name, settings.callback_queue_name)
        answer = post(client, ["41"], f"{listener.url}/second")
        assert answer.json["counts"]["stored"] == 1
        assert job_queue(redis, settings.callback_queue_name).job_ids == [f"callback-{answer.json['batch_id']}"]
        run_jobs(settings.control_queue_name, settings.callback_queue_name)
        # the first batch waits for its scheduled check; the second went at once
        assert [received.path for received in listener.received] == ["/second"]
        scheduled = job_queue(redis, settings.control_queue_name).scheduled_job_registry.get_job_ids()
        assert len(scheduled) == 1 and scheduled[0].startswith("callbacks-check-")


def test_two_batches_sharing_a_book_are_both_called_back(callback_app, run_jobs):
    listener = Listener()
    client, settings = callback_app(listener)
    with listener:
        first = post(client, ["51", "52"], f"{listener.url}/a").json["batch_id"]
        second = post(client, ["52"], f"{listener.url}/b").json["batch_id"]
        run_jobs()
        from worker.callbacks import check_callbacks

        job_queue(create_redis(settings), settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name, settings.callback_queue_name)
        batches = sorted(verify(received)["batch_id"] for received in listener.received)
    assert batches == sorted([first, second])


def create_redis(settings):
    from redis import Redis

    return Redis.from_url(settings.redis_url)


def test_only_one_claim_wins_and_only_one_delivery_job_is_made(settings, redis):
    callbacks = Callbacks(redis, settings.key_prefix, settings.batch_ttl)
    callbacks.register("b" * 32, "http://127.0.0.1:9/", "http://localhost/batches/b", [])
    assert callbacks.open_batches() == ["b" * 32]
    assert [callbacks.claim("b" * 32) for _ in range(3)] == [True, False, False]
    assert callbacks.open_batches() == []
    assert deliver_once(callbacks, settings, "b" * 32) is False
    assert job_queue(redis, settings.callback_queue_name).count == 0


def test_a_failed_delivery_is_retried_then_delivered_once(callback_app, run_jobs):
    listener = Listener(500, 503, 200)
    client, settings = callback_app(listener, CALLBACK_RETRY_INTERVALS="0,0")
    with listener:
        post(client, ["61"], f"{listener.url}/hook")
        run_jobs()
        from worker.callbacks import check_callbacks

        job_queue(create_redis(settings), settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name, settings.callback_queue_name)
        bodies = {received.body for received in listener.received}
        assert len(listener.received) == 3 and len(bodies) == 1


def test_a_failed_delivery_waits_for_its_retry_interval(callback_app, run_jobs, redis):
    listener = Listener(500)
    client, settings = callback_app(listener, CALLBACK_RETRY_INTERVALS="600")
    with listener:
        batch_id = post(client, ["71"], f"{listener.url}/hook").json["batch_id"]
        run_jobs()
        from worker.callbacks import check_callbacks

        job_queue(redis, settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name, settings.callback_queue_name)
        assert len(listener.received) == 1
    job = ServiceJob.fetch(f"callback-{batch_id}", connection=redis)
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == 0


def test_a_redirect_is_not_followed_and_counts_as_a_failure(callback_app, run_jobs, redis):
    listener = Listener(302)
    client, settings = callback_app(listener, CALLBACK_RETRY_INTERVALS="600")
    with listener:
        listener.location = f"{listener.url}/elsewhere"
        batch_id = post(client, ["81"], f"{listener.url}/hook").json["batch_id"]
        run_jobs()
        from worker.callbacks import check_callbacks

        job_queue(redis, settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name, settings.callback_queue_name)
        assert [received.path for received in listener.received] == ["/hook"]
    job = ServiceJob.fetch(f"callback-{batch_id}", connection=redis)
    assert job.get_status() == JobStatus.SCHEDULED  # to be tried again, at the same URL


def test_a_delivered_batch_is_not_sent_again_and_a_host_no_longer_allowed_is_not_called(callback_app, redis):
    from worker.callbacks import deliver_callback

    listener = Listener()
    client, settings = callback_app(listener)
    with listener:
        batch_id = post(client, ["91"], f"{listener.url}/hook").json["batch_id"]
        queue = job_queue(redis, settings.control_queue_name)
        callbacks = Callbacks(redis, settings.key_prefix, settings.batch_ttl)
        callbacks.mark_delivered(batch_id)
        assert queue.enqueue(deliver_callback, batch_id).perform() == "delivered before"
        callbacks.redis.delete(callbacks.key(batch_id, "delivered"))
        callback_app(CALLBACK_ALLOWED_HOSTS="hooks.example.com")
        assert queue.enqueue(deliver_callback, batch_id).perform().startswith("refused: callbacks may only go")
        assert listener.received == []


def test_a_receiver_that_drips_its_answer_is_given_up_on_at_the_total_deadline():
    """A byte of the status line every 0.2 s would keep a per-read timeout waiting forever."""
    from worker.callbacks import CallbackFailed, post_within

    with DripListener(interval=0.2) as drip:
        settings = Settings.from_env(
            {"CALLBACK_ALLOWED_HOSTS": f"127.0.0.1:{drip.port}", "CALLBACK_SECRET": "s", "CALLBACK_TIMEOUT": "1"}
        )
        started = time.monotonic()
        with pytest.raises(CallbackFailed, match="did not answer within 1 s"):
            post_within(f"{drip.url}/hook", b"{}", settings)
        took = time.monotonic() - started
        wait_until(lambda: drip.stays, 3, message="the receiver to see the caller hang up")
    assert 1.0 <= took < 1.5, took
    assert drip.stays[0] < 1.8, drip.stays


def test_an_unreachable_receiver_fails_the_attempt_with_its_reason():
    from worker.callbacks import CallbackFailed, post_within

    port = free_port()  # nothing listens there
    settings = Settings.from_env({"CALLBACK_ALLOWED_HOSTS": f"127.0.0.1:{port}", "CALLBACK_SECRET": "s"})
    with pytest.raises(CallbackFailed, match="could not be reached: ConnectionRefusedError"):
        post_within(f"http://127.0.0.1:{port}/", b"{}", settings)


def test_slots_are_shared_limited_given_back_and_leased(redis):
    slots = Slots(redis, "goodreads:callback-host", 2, lease=1)
    host = "hooks.example.com:443"
    assert [slots.take(host, token) for token in "xyz"] == [True, True, False]
    assert Slots(redis, "goodreads:callback-host", 2, lease=1).take("hooks.example.com:8443", "z")  # its own
    slots.give_back(host, "x")
    assert slots.take(host, "z") and not slots.take(host, "w")
    time.sleep(1.1)  # the lease of a holder that was killed ends by itself
    assert slots.take(host, "w")


def test_a_delivery_waits_its_turn_while_its_host_is_busy_without_spending_an_attempt(callback_app, run_jobs, redis):
    listener = Listener()
    client, settings = callback_app(listener, CALLBACK_HOST_CONCURRENCY="1", CALLBACK_RETRY_INTERVALS="600")
    slots, slot = host_slots(redis, settings), f"127.0.0.1:{listener.port}"
    with listener:
        assert slots.take(slot, "another-delivery")
        post(client, ["41"], f"{listener.url}/hook")
        run_jobs()
        batch_id = post(client, ["41"], f"{listener.url}/hook").json["batch_id"]  # stored: delivered at once
        run_jobs(settings.callback_queue_name)
        assert listener.received == []
        job = Job.fetch(f"callback-{batch_id}", connection=redis)
        assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == 1
        slots.give_back(slot, "another-delivery")
        registry = ScheduledJobRegistry(settings.callback_queue_name, connection=redis)
        redis.zadd(registry.key, dict.fromkeys(registry.get_job_ids(), 0))
        scheduler = RQScheduler([settings.callback_queue_name], connection=redis)
        scheduler.acquire_locks()
        scheduler.enqueue_scheduled_jobs()
        scheduler.release_locks()
        run_jobs(settings.callback_queue_name)
        assert [received.path for received in listener.received] == ["/hook"]
    assert verify(listener.received[0])["batch_id"] == batch_id
    assert redis.zcard(slots.key(slot)) == 0  # its slot given back
