"""The origin's shared health, in process: what counts as the origin's trouble, when the fleet
pauses and resumes, what paused books say, robots.txt, the proxy and the cookies file."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import pytest
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from books.origin import PROBE_SAMPLE, OriginHealth, OriginState
from books.queue import BookQueue
from books.settings import ConfigError, Settings
from tests.origin import CHALLENGE_PAGE, FIXTURES, WAF_SCRIPT, book_page, with_waf_script
from tests.proxy import ForwardProxy
from worker.fetch import OriginResponse, origin_trouble
from worker.parser import NotABookPage, has_book_data, parse_book_page

SECRET = "s3cr3t-session-value"


def link(book_id: str) -> str:
    return f"https://www.goodreads.com/book/show/{book_id}"


def answer(status: int, body: bytes = b"", retry_after: float | None = None, waf: str = "") -> OriginResponse:
    return OriginResponse(status, body, retry_after, "http://origin/book/show/1", waf)


@pytest.mark.parametrize(
    ("response", "state", "words"),
    [
        (answer(202), OriginState.CHALLENGE, "HTTP 202 with an empty body (a bot challenge)"),
        (answer(202, waf="challenge"), OriginState.CHALLENGE, "x-amzn-waf-action: challenge"),
        (answer(200, b'<script src="https://x.token.awswaf.com/x/challenge.js">'), OriginState.CHALLENGE, "page"),
        (answer(405, b"<html>", waf="captcha"), OriginState.CHALLENGE, "CAPTCHA challenge"),
        (answer(403), OriginState.REFUSED, "refused the request (HTTP 403)"),
        (answer(401), OriginState.REFUSED, "refused the request (HTTP 401)"),
        (answer(429), OriginState.RATE_LIMIT, "rate limit"),
        (answer(503, retry_after=30), OriginState.RATE_LIMIT, "Retry-After 30 s"),
    ],
)
def test_answers_about_the_origin(response, state, words):
    trouble = origin_trouble(response)
    assert trouble is not None and trouble.state == state and words in trouble.reason


@pytest.mark.parametrize("response", [answer(503), answer(500), answer(404), answer(200, b"<html>a book</html>")])
def test_answers_about_the_book(response):
    assert origin_trouble(response) is None


# What each fixture page is once it loads AWS WAF's challenge script: a book's page stays a
# book's, a sign-in page a sign-in wall; a small page with no book in it is the challenge.
TAGGED_FIXTURES = {
    "next_apollo.html": None,
    "next_apollo_sparse.html": None,
    "next_markup_only.html": None,
    "legacy.html": None,
    "legacy_kindle.html": None,
    "signin_wall.html": None,
    "amazon_signin.html": None,
    "no_book_data.html": OriginState.CHALLENGE,
}


def test_every_fixture_page_is_classified():
    assert sorted(TAGGED_FIXTURES) == sorted(path.name for path in FIXTURES.glob("*.html"))


@pytest.mark.parametrize("where", ["head", "body"])
@pytest.mark.parametrize(("name", "state"), TAGGED_FIXTURES.items())
def test_a_page_loading_the_challenge_script_is_a_challenge_only_without_a_book(name, state, where):
    plain = (FIXTURES / name).read_bytes()
    tagged = with_waf_script(plain, where)
    assert WAF_SCRIPT in tagged and len(tagged) == len(plain) + len(WAF_SCRIPT)
    assert origin_trouble(answer(200, plain)) is None
    trouble = origin_trouble(answer(200, tagged))
    assert (trouble and trouble.state) == state
    if state is None:  # read as if the script were not there
        assert parse_book_page(tagged, "1") == parse_book_page(plain, "1")
        assert has_book_data(tagged) == (not isinstance(parse_book_page(plain, "1"), NotABookPage))


@pytest.mark.parametrize(
    "response",
    [
        answer(200, CHALLENGE_PAGE),  # the interstitial alone
        answer(202, with_waf_script(book_page("1"))),  # a book's page, but the WAF's status
        answer(200, with_waf_script(book_page("1")), waf="challenge"),  # ... or its header
    ],
)
def test_the_true_challenge_still_is_one(response):
    trouble = origin_trouble(response)
    assert trouble is not None and trouble.state == OriginState.CHALLENGE


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FETCH_PROXY": "socks5://user:pw@127.0.0.1:1080"}, "FETCH_PROXY"),
        ({"ORIGIN_PROBE_INTERVALS": "30,-1"}, "ORIGIN_PROBE_INTERVALS"),
        ({"ORIGIN_PAUSE_MAX": "-5"}, "ORIGIN_PAUSE_MAX"),
        ({"ORIGIN_PAUSE_AFTER": "0"}, "ORIGIN_PAUSE_AFTER"),
        ({"GOODREADS_COOKIES_FILE": "/nonexistent/cookies.txt"}, "GOODREADS_COOKIES_FILE"),
    ],
)
def test_bad_origin_settings_stop_the_process_naming_the_setting(env, named):
    with pytest.raises(ConfigError, match=named) as error:
        Settings.from_env(env)
    assert "pw@" not in str(error.value)


def test_a_malformed_cookies_file_is_refused_without_echoing_it(tmp_path):
    path = tmp_path / "cookies.txt"
    path.write_text(f"sid={SECRET}\n")
    with pytest.raises(ConfigError, match="GOODREADS_COOKIES_FILE") as error:
        Settings.from_env({"GOODREADS_COOKIES_FILE": str(path)})
    assert SECRET not in str(error.value)


def test_the_fleet_pauses_after_answers_in_a_row_and_a_page_resets_the_count(redis, configure):
    health = OriginHealth(redis, configure(ORIGIN_PAUSE_AFTER="3", ORIGIN_PROBE_INTERVALS="10,20"))
    assert health.report_trouble("1", OriginState.CHALLENGE, "c", 0, False) == ("counted", False)
    assert health.report_trouble("2", OriginState.CHALLENGE, "c", 0, False) == ("counted", False)
    assert health.report_success() is False  # an answer between: the streak starts again
    assert health.report_trouble("3", OriginState.CHALLENGE, "c", 0, False)[0] == "counted"
    assert health.report_trouble("4", OriginState.CHALLENGE, "c", 0, False)[0] == "counted"
    assert health.report_trouble("4", OriginState.CHALLENGE, "c", 0, False)[0] == "counted"  # the same book
    assert not health.snapshot().paused
    assert health.report_trouble("5", OriginState.REFUSED, "r", 0, False) == ("paused_now", True)
    snapshot = health.snapshot()
    assert snapshot.state == OriginState.REFUSED and snapshot.since
    assert snapshot.next_probe_at == pytest.approx(snapshot.since + 10, abs=0.01)
    assert health.gate("1") == ("wait", None)  # the first probe is 10 s away


def test_one_probe_at_a_time_at_growing_intervals_then_resume(redis, configure):
    health = OriginHealth(redis, configure(ORIGIN_PAUSE_AFTER="1", ORIGIN_PROBE_INTERVALS="10,20,40"))
    health.report_trouble("7", OriginState.UNREACHABLE, "u", 0, False)
    assert health.park("7") == (pytest.approx(health.snapshot().next_probe_at), True)  # book 7 sends the probe
    wake_at, prober = health.park("8")
    assert not prober and wake_at == pytest.approx(health.snapshot().next_probe_at + 40)
    redis.hset(health.key, "next_probe_at", 0)  # the probe is due
    assert [health.gate(book) for book in ("7", "8")] == [("probe", None), ("wait", None)]  # one at a time
    before = time.time()
    assert health.report_trouble("7", OriginState.UNREACHABLE, "u", 0, True) == ("probe_failed", False)
    assert health.snapshot().next_probe_at == pytest.approx(before + 20, abs=1)  # the second interval
    redis.hset(health.key, "next_probe_at", 0)
    assert health.gate("8") == ("probe", None)  # no book served yet: its own
    health.report_trouble("7", OriginState.UNREACHABLE, "u", 0, True)
    assert health.snapshot().next_probe_at == pytest.approx(time.time() + 40, abs=1)
    health.report_trouble("7", OriginState.UNREACHABLE, "u", 0, True)
    assert health.snapshot().next_probe_at == pytest.approx(time.time() + 40, abs=1)  # the last repeats
    assert health.snapshot().probes == 2
    assert health.report_success() is True
    assert health.snapshot().state == OriginState.OK and health.gate("8") == ("go", None)


def test_a_challenge_pauses_the_fleet_and_a_probe_resumes_it(
    configure, client, origin, run_jobs, run_due_jobs, redis, caplog
):
    configure(ORIGIN_PAUSE_AFTER="1", ORIGIN_PROBE_INTERVALS="60")
    origin.everyone("waf")
    client.post("/parseGoodreadsLinks", json=[link(n) for n in ("1", "2", "3")])
    with caplog.at_level(logging.WARNING):
        run_jobs()
    assert len(origin.requests()) == 2  # robots.txt and one book; the others never went out
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == [
        "origin paused: every worker stops fetching"
    ]
    for book in ("1", "2", "3"):
        body = client.get(f"/getBookInfo?url={link(book)}")
        assert body.status_code == 202
        state = body.get_json()
        assert state["status"] == "paused" and "challenge" in state["reason"] and "since" in state["reason"]
        assert state["next_attempt_at"] and "attempts" not in state  # no attempt spent
    batch = client.post("/parseGoodreadsLinks", json=[link("1"), link("2")]).get_json()
    progress = client.get(f"/batches/{batch['batch_id']}").get_json()
    assert progress["counts"]["paused"] == 2 and not progress["finished"]
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["origin"]["state"] == "paused"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'goodreads_origin_state{state="challenge"} 1.0' in metrics
    assert "goodreads_origin_state_since_seconds" in metrics

    run_due_jobs()  # still challenged: the probe alone goes out
    assert len(origin.requests()) == 3
    assert "goodreads_origin_probes_total 1.0" in client.get("/metrics").get_data(as_text=True)

    origin.everyone("page")
    run_due_jobs()
    assert sorted(a.book_id for a in origin.fetches()[-3:]) == ["1", "2", "3"]
    assert len(origin.requests()) == 6  # robots.txt, two challenged, one probe that worked, two more
    for book in ("1", "2", "3"):
        record = client.get(f"/getBookInfo?url={link(book)}")
        assert record.status_code == 200
        assert redis.hget(f"goodreads:status:{book}", "attempts") == b"1"
    assert client.get("/readyz").get_json()["origin"]["state"] == "ok"


def test_one_odd_answer_does_not_pause_and_costs_the_book_no_attempt(
    configure, client, origin, run_jobs, run_due_jobs, redis
):
    settings = configure(RETRY_INTERVALS="1")
    origin.behave("5", "waf", "page")
    client.post("/parseGoodreadsLinks", json=[link("5"), link("6")])
    run_jobs()
    assert not OriginHealth(redis, settings).snapshot().paused
    assert client.get(f"/getBookInfo?url={link('5')}").get_json()["status"] == "retrying"
    run_due_jobs()
    assert client.get(f"/getBookInfo?url={link('5')}").status_code == 200
    assert redis.hget("goodreads:status:5", "attempts") == b"1"


def test_a_wall_for_one_book_keeps_its_own_retries(configure, client, origin, run_jobs, run_due_jobs, redis):
    settings = configure(RETRY_INTERVALS="1")  # the app's RETRY_MAX: 2
    origin.behave("7", "403")
    client.post("/parseGoodreadsLinks", json=[link("7")])
    run_jobs()  # the first 403: deferred, unspent
    origin.behave("8", "page")
    client.post("/parseGoodreadsLinks", json=[link("8")])
    for _ in range(4):
        run_due_jobs()
    state = client.get(f"/getBookInfo?url={link('7')}").get_json()
    assert state["status"] == "blocked" and "HTTP 403" in state["reason"]
    assert len(origin.fetches("7")) == 4  # one odd answer, then the first try and RETRY_MAX=2 retries
    assert not OriginHealth(redis, settings).snapshot().paused


def test_paused_longer_than_the_bound_ends_failed_and_a_new_post_revives(configure, client, origin, run_jobs):
    configure(ORIGIN_PAUSE_AFTER="1", ORIGIN_PAUSE_MAX="0", GOODREADS_BASE_URL="http://127.0.0.1:9")
    client.post("/parseGoodreadsLinks", json=[link("9")])
    run_jobs()
    state = client.get(f"/getBookInfo?url={link('9')}").get_json()
    assert state["status"] == "failed"
    assert "unreachable" in state["reason"] and "ORIGIN_PAUSE_MAX" in state["reason"]
    assert client.post("/parseGoodreadsLinks", json=[link("9")]).get_json()["counts"]["queued"] == 1


@pytest.mark.parametrize(("step", "final", "words"), [("403", "blocked", "refused"), ("captcha", "blocked", "CAPTCHA")])
def test_a_refusing_origin_ends_blocked_past_the_bound(configure, client, origin, run_jobs, step, final, words):
    configure(ORIGIN_PAUSE_AFTER="1", ORIGIN_PAUSE_MAX="0")
    origin.everyone(step)
    client.post("/parseGoodreadsLinks", json=[link("10")])
    run_jobs()
    state = client.get(f"/getBookInfo?url={link('10')}").get_json()
    assert state["status"] == final and words in state["reason"]


def test_robots_txt_disallowed_books_are_never_requested(configure, client, origin, run_jobs, redis):
    configure()
    origin.robots_txt = "User-agent: *\nDisallow: /book/show/13\nCrawl-delay: 0.01\n"
    client.post("/parseGoodreadsLinks", json=[link("13"), link("14")])
    run_jobs()
    state = client.get(f"/getBookInfo?url={link('13')}").get_json()
    assert state["status"] == "blocked" and "robots.txt" in state["reason"]
    assert not origin.fetches("13") and client.get(f"/getBookInfo?url={link('14')}").status_code == 200
    assert len(origin.robots_fetches) == 1  # kept in Redis for everyone
    assert redis.ttl("goodreads:origin:robots") > 3600


def test_a_failing_robots_txt_pauses_like_the_origin(configure, client, origin, run_jobs, redis):
    settings = configure(ORIGIN_PAUSE_AFTER="1")
    origin.behave("robots.txt", "503")
    client.post("/parseGoodreadsLinks", json=[link("15")])
    run_jobs()
    assert not origin.fetches("15")
    snapshot = OriginHealth(redis, settings).snapshot()
    assert snapshot.state == OriginState.UNREACHABLE and "robots.txt answered HTTP 503" in snapshot.reason


def test_a_paused_fleets_next_probe_waits_a_capped_retry_after(configure, client, origin, run_jobs, redis):
    settings = configure(ORIGIN_PAUSE_AFTER="1", ORIGIN_PROBE_INTERVALS="10", ORIGIN_WAIT_MAX="50", FETCH_RATE="1000")
    origin.everyone("429:99999999")
    client.post("/parseGoodreadsLinks", json=[link("19")])
    before = time.time()
    run_jobs()
    snapshot = OriginHealth(redis, settings).snapshot()
    assert snapshot.state == OriginState.RATE_LIMIT and "Retry-After 50 s" in snapshot.reason
    assert before + 50 <= snapshot.next_probe_at <= time.time() + 50
    state = client.get(f"/getBookInfo?url={link('19')}").get_json()
    assert state["status"] == "paused"
    assert datetime.fromisoformat(state["next_attempt_at"]).timestamp() <= time.time() + 50


def test_a_trickling_robots_txt_is_given_up_at_the_pages_deadline(configure, client, origin, run_jobs, redis):
    settings = configure(ORIGIN_PAUSE_AFTER="1", FETCH_CONNECT_TIMEOUT="0.5", FETCH_READ_TIMEOUT="0.5")
    origin.robots_txt = "User-agent: *\nAllow: /\n" + "# a comment\n" * 100  # about 20 s at a byte per 0.02 s
    origin.behave("robots.txt", "drip:0.02")
    client.post("/parseGoodreadsLinks", json=[link("15")])
    started = time.monotonic()
    run_jobs()
    assert time.monotonic() - started < 4
    assert not origin.fetches("15") and not redis.exists("goodreads:origin:robots")
    snapshot = OriginHealth(redis, settings).snapshot()
    assert snapshot.state == OriginState.UNREACHABLE
    assert snapshot.reason == "Goodreads is unreachable: robots.txt: Goodreads sent the page too slowly"
    assert client.get(f"/getBookInfo?url={link('15')}").get_json()["status"] == "paused"


def test_a_crawl_delay_of_days_is_capped_at_origin_wait_max(configure, client, origin, run_jobs, redis):
    configure(FETCH_RATE="1000", ORIGIN_WAIT_MAX="2")
    origin.robots_txt = "User-agent: *\nCrawl-delay: 100000\n"
    client.post("/parseGoodreadsLinks", json=[link("17"), link("18")])
    run_jobs()  # robots.txt, then each book 2 s after the request before it
    assert client.get(f"/getBookInfo?url={link('18')}").status_code == 200
    robots, first, second = origin.requests()
    assert 1.9 <= first.at - robots.at < 3 and 1.9 <= second.at - first.at < 3


def test_page_requests_and_robots_txt_go_through_the_proxy(configure, client, origin, run_jobs):
    proxy = ForwardProxy()
    proxy.start()
    try:
        configure(FETCH_PROXY=proxy.url)
        client.post("/parseGoodreadsLinks", json=[link("16")])
        run_jobs()
        assert client.get(f"/getBookInfo?url={link('16')}").status_code == 200
        assert proxy.seen == [f"{origin.url}/robots.txt", f"{origin.url}/book/show/16"]
    finally:
        proxy.stop()


def write_cookies(path, value: str, host: str = "127.0.0.1") -> None:
    path.write_text(f"# Netscape HTTP Cookie File\n{host}\tFALSE\t/\tFALSE\t0\tsid\t{value}\n")


def test_the_operators_cookies_go_to_the_origin_and_a_new_file_is_picked_up(
    configure, client, origin, run_jobs, run_due_jobs, redis, tmp_path, caplog
):
    cookies = tmp_path / "cookies.txt"
    write_cookies(cookies, SECRET)
    configure(GOODREADS_COOKIES_FILE=str(cookies), RETRY_INTERVALS="1")
    origin.require_cookie = f"sid={SECRET}"
    with caplog.at_level(logging.DEBUG):
        client.post("/parseGoodreadsLinks", json=[link("17")])
        run_jobs()
        assert client.get(f"/getBookInfo?url={link('17')}").status_code == 200
        assert f"sid={SECRET}" in (origin.fetches("17")[0].cookie or "")

        origin.require_cookie = "sid=renewed"  # the old session expired: challenged despite the cookies
        client.post("/parseGoodreadsLinks?refresh=true", json=[link("18")])
        run_jobs()
        state = client.get(f"/getBookInfo?url={link('18')}").get_json()
        assert "the session cookies were refused or have expired" in state["reason"]

        write_cookies(cookies, "renewed")
        stat = cookies.stat()
        import os

        os.utime(cookies, (stat.st_atime, stat.st_mtime + 5))
        run_due_jobs()
        assert client.get(f"/getBookInfo?url={link('18')}").status_code == 200
    logged = "\n".join(record.getMessage() + str(getattr(record, "fields", "")) for record in caplog.records)
    assert SECRET not in logged
    assert all(SECRET.encode() not in value for value in redis_values(redis))


def redis_values(redis) -> list[bytes]:
    values = []
    for key in redis.scan_iter():
        kind = redis.type(key)
        if kind == b"string":
            values.append(redis.get(key))
        elif kind == b"hash":
            values.extend(redis.hvals(key))
    return values


def test_cookies_are_kept_only_for_the_origins_host(tmp_path):
    from worker.cookies import for_host

    cookies = tmp_path / "cookies.txt"
    cookies.write_text(
        "# Netscape HTTP Cookie File\n"
        ".goodreads.com\tTRUE\t/\tTRUE\t0\tsid\tone\n"
        ".evil.example\tTRUE\t/\tFALSE\t0\tsid\ttwo\n"
    )
    from books.settings import load_cookies

    assert [c.value for c in for_host(load_cookies(str(cookies)), "www.goodreads.com")] == ["one"]


def test_every_book_waiting_for_the_origin_says_paused_until_the_next_probe(configure, client, origin, run_jobs, redis):
    settings = configure(ORIGIN_PAUSE_AFTER="1", ORIGIN_PROBE_INTERVALS="60")
    origin.everyone("waf")
    client.post("/parseGoodreadsLinks", json=[link(n) for n in ("21", "22")])
    run_jobs()  # book 21 pauses the fleet; 22 is parked
    health = OriginHealth(redis, settings)
    probe_at = health.snapshot().next_probe_at
    assert probe_at
    # Sent while paused: in the queue, never tried.
    batch = client.post("/parseGoodreadsLinks", json=[link(n) for n in ("21", "22", "23", "24")]).get_json()
    # A parked book the scheduler has put back on the queue, the origin still paused.
    registry = ScheduledJobRegistry(settings.queue_name, connection=redis)
    redis.zadd(registry.key, dict.fromkeys(registry.get_job_ids(), 0))
    scheduler = RQScheduler([settings.queue_name], connection=redis)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    assert redis.hget("rq:job:book-22", "status") == b"queued"
    assert redis.hget("goodreads:status:22", "state") == b"paused"
    for book in ("21", "22", "23", "24"):
        state = client.get(f"/getBookInfo?url={link(book)}").get_json()
        assert state["status"] == "paused" and "challenge" in state["reason"] and "since" in state["reason"]
        assert datetime.fromisoformat(state["next_attempt_at"]).timestamp() == pytest.approx(probe_at, abs=0.001)
    progress = client.get(f"/batches/{batch['batch_id']}").get_json()
    assert progress["counts"]["paused"] == 4 and progress["counts"]["queued"] == 0
    assert {entry["status"] for entry in progress["links"]} == {"paused"}
    assert all("challenge" in entry["reason"] for entry in progress["links"])
    assert (
        BookQueue(redis, settings).statuses(["21", "22", "23", "24"]) == [("paused", None)] * 4
    )  # large batches' counts

    health.report_success()  # the origin serves again: those in the queue are only queued
    for book in ("22", "23"):
        state = client.get(f"/getBookInfo?url={link(book)}").get_json()
        assert state["status"] == "queued" and "reason" not in state and "next_attempt_at" not in state


@pytest.mark.parametrize(
    ("base_url", "words"),
    [("http://no-such-host.invalid", "the name does not resolve (DNS)"), ("http://127.0.0.1:9", "connection refused")],
)
def test_a_name_that_does_not_resolve_or_a_refused_connection_is_this_hosts_network(
    configure, client, run_jobs, base_url, words
):
    configure(ORIGIN_PAUSE_AFTER="1", GOODREADS_BASE_URL=base_url, FETCH_CONNECT_TIMEOUT="2")
    client.post("/parseGoodreadsLinks", json=[link("25")])
    run_jobs()
    state = client.get(f"/getBookInfo?url={link('25')}").get_json()
    assert state["status"] == "paused" and state["next_attempt_at"]
    assert words in state["reason"] and "unreachable" in state["reason"]
    assert "this host's network, not Goodreads: check this host's network or FETCH_PROXY" in state["reason"]
    assert "the demo origin runs without Goodreads" in state["reason"]


def test_the_probe_asks_for_the_books_served_last_in_turn_at_once(redis, configure):
    health = OriginHealth(redis, configure(ORIGIN_PAUSE_AFTER="2", ORIGIN_PROBE_INTERVALS="10,20"))
    for book in ("1", "2", "3", "2"):
        health.remember_served(book)
    assert redis.lrange(health.served_key, 0, -1) == [b"2", b"3", b"1"]  # newest first, once each
    for book in range(100, 100 + PROBE_SAMPLE):
        health.remember_served(str(book))
    assert redis.llen(health.served_key) == PROBE_SAMPLE
    health.report_trouble("7", OriginState.REFUSED, "r", 0, False)
    assert health.report_trouble("8", OriginState.REFUSED, "r", 0, False)[0] == "paused_now"
    assert health.snapshot().next_probe_at == pytest.approx(time.time(), abs=1)  # a check, at once
    assert redis.smembers(health.suspects_key) == {b"7", b"8"}
    assert health.gate("7", may_probe=False) == ("wait", None)
    assert health.gate("7") == ("probe", "100")  # the oldest of the sample, not book 7
    assert health.gate("8") == ("wait", None)  # one probe in flight
    assert health.report_trouble("7", OriginState.REFUSED, "r", 0, True)[0] == "probe_failed"
    assert health.snapshot().next_probe_at == pytest.approx(time.time() + 10, abs=1)  # then the intervals
    redis.hset(health.key, "next_probe_at", 0)
    assert health.gate("8") == ("probe", "101")  # the next one, in turn
    assert health.report_success() is True  # after a failed probe: the origin's trouble, not theirs
    assert not redis.exists(health.suspects_key)
    assert not redis.hexists("goodreads:status:7", "own_trouble")


def test_books_that_alone_meet_refusals_while_others_are_served_end_on_their_own(
    configure, client, origin, run_jobs, run_due_jobs, redis, caplog
):
    settings = configure(ORIGIN_PAUSE_AFTER="3", ORIGIN_PROBE_INTERVALS="60", RETRY_INTERVALS="1")
    client.post("/parseGoodreadsLinks", json=[link("30")])
    run_jobs()  # a book Goodreads serves
    for book, step in (("31", "403"), ("32", "waf"), ("33", "403")):
        origin.behave(book, step)
    client.post("/parseGoodreadsLinks", json=[link(n) for n in ("31", "32", "33", "34")])
    with caplog.at_level(logging.WARNING):
        run_jobs()
    # 31 and 32: a first odd answer each; 33 paused the fleet; 34's job sent the probe at once,
    # for book 30: served, so the three were suspects with their own trouble. 33, released, met
    # its own again: a failure of its own, retried (the app's jobs retry at once) and blocked.
    warned = [r.message for r in caplog.records if r.message.startswith("origin")]
    assert warned == ["origin paused: every worker stops fetching", "origin resumed: Goodreads serves pages again"]
    assert [a.book_id for a in origin.fetches()] == ["30", "31", "32", "33", "30", "34", "33", "33", "33"]
    assert client.get(f"/getBookInfo?url={link('34')}").status_code == 200
    assert all(redis.hget(f"goodreads:status:{book}", "own_trouble") == b"1" for book in ("31", "32", "33"))
    health = OriginHealth(redis, settings)
    for _ in range(4):
        run_due_jobs()
        assert not health.snapshot().paused  # their answers count toward no pause again
    for book, words in (("31", "HTTP 403"), ("32", "challenge"), ("33", "HTTP 403")):
        state = client.get(f"/getBookInfo?url={link(book)}").get_json()
        assert state["status"] == "blocked" and words in state["reason"]
    # A new POST of such a book starts afresh: its answers count again.
    client.post("/parseGoodreadsLinks", json=[link("31")])
    assert not redis.hexists("goodreads:status:31", "own_trouble")
