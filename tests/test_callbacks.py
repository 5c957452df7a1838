"""Callbacks in process: which URLs are allowed, the signature, the claim, the completion check,
delivery, retry and no redirect (the jobs run in RQ's SimpleWorker against the tests' Redis)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from rq.job import JobStatus

from app import create_app
from books.callbacks import Callbacks, deliver_once, refusal, signature
from books.jobs import job_queue
from books.settings import ConfigError, Settings
from tests.listener import Listener
from worker.jobs import ServiceJob

ALLOWED = frozenset({"127.0.0.1", "hooks.example.com"})
SECRET = "test-secret"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://hooks.example.com/done", None),
        ("http://HOOKS.example.com:8443/done?x=1", None),
        ("http://127.0.0.1:9/done", None),
        ("ftp://hooks.example.com/done", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("hooks.example.com/done", "must start with http:// or https://"),
        ("https://user:pw@hooks.example.com/done", "must not hold a user name or password"),
        ("https://hooks.example.com@10.0.0.1/done", "must not hold a user name or password"),
        ("https://evil.example.com/done", "not 'evil.example.com'"),
        ("https://hooks.example.com.evil.net/", "not 'hooks.example.com.evil.net'"),
        ("http://localhost/admin", "not 'localhost'"),
        ("http://169.254.169.254/latest/meta-data", "not '169.254.169.254'"),
        ("http:///nohost", "not 'an empty host'"),
        ("http://127.0.0.1:port/", "is not a valid URL"),
        ("http://[::1/", "is not a valid URL"),
        ("https://hooks.example.com/a b", "one line"),
        ("https://hooks.example.com/\r\nX-Evil: 1", "one line"),
        ("https://hooks.example.com/" + "a" * 2000, "one line of at most 2000"),
    ],
)
def test_callback_urls_are_refused_unless_http_to_an_allowed_host(url, reason):
    found = refusal(url, ALLOWED)
    assert found is None if reason is None else reason in found


def test_callbacks_are_off_without_allowed_hosts():
    assert "callbacks are off" in refusal("https://hooks.example.com/", frozenset())


def test_the_signature_is_hmac_sha256_of_the_body_in_hex():
    # RFC 4231, test case 2
    assert signature(b"what do ya want for nothing?", "Jefe") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_allowed_hosts_need_a_secret_and_sane_numbers():
    with pytest.raises(ConfigError, match="CALLBACK_SECRET"):
        Settings.from_env({"CALLBACK_ALLOWED_HOSTS": "hooks.example.com"})
    with pytest.raises(ConfigError, match="CALLBACK_RETRY_INTERVALS"):
        Settings.from_env({"CALLBACK_RETRY_INTERVALS": "5,-1"})
    with pytest.raises(ConfigError, match="CALLBACK_CHECK_INTERVAL"):
        Settings.from_env({"CALLBACK_CHECK_INTERVAL": "0"})
    settings = Settings.from_env({"CALLBACK_ALLOWED_HOSTS": " Hooks.Example.com, 127.0.0.1 ,", "CALLBACK_SECRET": "s"})
    assert settings.callback_hosts == ALLOWED


@pytest.fixture
def callback_app(configure):
    def make(**env: str):
        settings = configure(**{"CALLBACK_ALLOWED_HOSTS": "127.0.0.1", "CALLBACK_SECRET": SECRET, **env})
        app = create_app(settings)
        return app, settings

    made = []

    def tracked(**env: str):
        app, settings = make(**env)
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
    assert answer.json["message"] == "callbacks may only go to the hosts in CALLBACK_ALLOWED_HOSTS, not '10.0.0.5'"
    assert redis.keys("rq:job:*") == []


def verify(received, secret=SECRET):
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["X-Signature-256"], expected)
    assert received.headers["Content-Type"] == "application/json"
    return json.loads(received.body)


def test_a_batch_whose_books_settle_is_called_back_once_signed(callback_app, run_jobs, origin, redis):
    client, settings = callback_app()
    origin.behave("32", "404")
    with Listener() as listener:
        answer = post(client, ["31", "32", "31"], f"{listener.url}/hook?team=data")
        batch_id = answer.json["batch_id"]
        run_jobs(settings.control_queue_name)
        assert listener.received == []  # the books are still queued: the check waits
        pending = Callbacks(redis, settings.key_prefix, settings.batch_ttl).pending(batch_id, 10)
        assert pending == ["31", "32"]
        run_jobs()  # the book jobs
        from worker.callbacks import check_callbacks

        job_queue(redis, settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name)
        run_jobs(settings.control_queue_name)  # a second check finds nothing to do
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
    client, settings = callback_app()
    with Listener() as listener:
        post(client, ["41"], f"{listener.url}/first")
        run_jobs()
        run_jobs(settings.control_queue_name)
        answer = post(client, ["41"], f"{listener.url}/second")
        assert answer.json["counts"]["stored"] == 1
        assert job_queue(redis, settings.control_queue_name).job_ids == [f"callback-{answer.json['batch_id']}"]
        run_jobs(settings.control_queue_name)
        # the first batch waits for its scheduled check; the second went at once
        assert [received.path for received in listener.received] == ["/second"]
        scheduled = job_queue(redis, settings.control_queue_name).scheduled_job_registry.get_job_ids()
        assert len(scheduled) == 1 and scheduled[0].startswith("callbacks-check-")


def test_two_batches_sharing_a_book_are_both_called_back(callback_app, run_jobs):
    client, settings = callback_app()
    with Listener() as listener:
        first = post(client, ["51", "52"], f"{listener.url}/a").json["batch_id"]
        second = post(client, ["52"], f"{listener.url}/b").json["batch_id"]
        run_jobs()
        from worker.callbacks import check_callbacks

        job_queue(create_redis(settings), settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name)
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
    assert job_queue(redis, settings.control_queue_name).count == 0


def test_a_failed_delivery_is_retried_then_delivered_once(callback_app, run_jobs):
    client, settings = callback_app(CALLBACK_RETRY_INTERVALS="0,0")
    with Listener(500, 503, 200) as listener:
        post(client, ["61"], f"{listener.url}/hook")
        run_jobs()
        from worker.callbacks import check_callbacks

        job_queue(create_redis(settings), settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name)
        bodies = {received.body for received in listener.received}
        assert len(listener.received) == 3 and len(bodies) == 1


def test_a_failed_delivery_waits_for_its_retry_interval(callback_app, run_jobs, redis):
    client, settings = callback_app(CALLBACK_RETRY_INTERVALS="600")
    with Listener(500) as listener:
        batch_id = post(client, ["71"], f"{listener.url}/hook").json["batch_id"]
        run_jobs()
        from worker.callbacks import check_callbacks

        job_queue(redis, settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name)
        assert len(listener.received) == 1
    job = ServiceJob.fetch(f"callback-{batch_id}", connection=redis)
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == 0


def test_a_redirect_is_not_followed_and_counts_as_a_failure(callback_app, run_jobs, redis):
    client, settings = callback_app(CALLBACK_RETRY_INTERVALS="600")
    with Listener(302) as listener:
        listener.location = f"{listener.url}/elsewhere"
        batch_id = post(client, ["81"], f"{listener.url}/hook").json["batch_id"]
        run_jobs()
        from worker.callbacks import check_callbacks

        job_queue(redis, settings.control_queue_name).enqueue(check_callbacks)
        run_jobs(settings.control_queue_name)
        assert [received.path for received in listener.received] == ["/hook"]
    job = ServiceJob.fetch(f"callback-{batch_id}", connection=redis)
    assert job.get_status() == JobStatus.SCHEDULED  # to be tried again, at the same URL


def test_a_delivered_batch_is_not_sent_again_and_a_host_no_longer_allowed_is_not_called(callback_app, redis):
    from worker.callbacks import deliver_callback

    client, settings = callback_app()
    with Listener() as listener:
        batch_id = post(client, ["91"], f"{listener.url}/hook").json["batch_id"]
        queue = job_queue(redis, settings.control_queue_name)
        callbacks = Callbacks(redis, settings.key_prefix, settings.batch_ttl)
        callbacks.mark_delivered(batch_id)
        assert queue.enqueue(deliver_callback, batch_id).perform() == "delivered before"
        callbacks.redis.delete(callbacks.key(batch_id, "delivered"))
        callback_app(CALLBACK_ALLOWED_HOSTS="hooks.example.com")
        assert queue.enqueue(deliver_callback, batch_id).perform().startswith("refused: callbacks may only go")
        assert listener.received == []
