"""When Goodreads challenges, refuses, or cannot be reached, the whole fleet pauses: books wait,
attempts unspent; one probe goes out at growing intervals; when it gets a page everyone
resumes and nothing has to be sent again. The real processes, over HTTP."""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime

import pytest
import requests
from redis import Redis

from tests.origin import Origin
from tests.processes import Service, wait_until
from tests.proxy import ForwardProxy

pytestmark = pytest.mark.e2e

SECRET = "e2e-cookie-value-7f3a"


def links(first: int, count: int) -> list[str]:
    return [f"https://www.goodreads.com/book/show/{first + n}" for n in range(count)]


def states(service: Service, books: list[str]) -> list[dict]:
    return [requests.get(f"{service.url}/getBookInfo", params={"url": b}, timeout=10).json() for b in books]


def all_paused(service: Service, books: list[str]) -> list[dict] | None:
    answers = states(service, books)
    return answers if all(a.get("status") == "paused" for a in answers) else None


def metric(service: Service, name: str) -> float:
    for line in requests.get(f"{service.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def warnings(service: Service, message: str) -> int:
    count = 0
    for path in service.log_dir.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and json.loads(line).get("message") == message:
                count += 1
    return count


def test_a_challenge_that_lifts_costs_only_probes_and_every_book_is_stored_once(make_service, origin, redis):
    origin.everyone("waf")
    service = make_service(workers=2, FETCH_RATE="20", ORIGIN_PROBE_INTERVALS="2,3")
    books = links(100, 30)
    requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10)
    answers = wait_until(lambda: all_paused(service, books), 40, 0.3, "every book to be paused")
    assert all("challenge" in a["reason"] and "since" in a["reason"] and a["next_attempt_at"] for a in answers)
    ready = requests.get(f"{service.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["origin"]["state"] == "paused"
    # The threshold (three books in a row) and the workers' requests already in flight, no more:
    # every request that came before the first probe was due (the books may take longer to
    # be paused than that under load, so the probe may have gone out already).
    first_probe_due = float(redis.hget("goodreads:origin", "since")) + 2  # ORIGIN_PROBE_INTERVALS' first
    to_wall_clock = time.time() - time.monotonic()  # the origin notes arrivals on the monotonic clock
    paused_requests = sum(1 for a in origin.requests() if a.at + to_wall_clock < first_probe_due)
    assert paused_requests <= 1 + 3 + 1  # robots.txt, three books, one in flight on the other worker
    time.sleep(8)  # challenged for a while: only probes go out
    probes = metric(service, "goodreads_origin_probes_total")
    assert 2 <= probes <= 4
    # A probe is counted as it is claimed, a moment before it reaches the origin.
    assert probes - 1 <= len(origin.requests()) - paused_requests <= probes
    assert metric(service, 'goodreads_origin_state{state="challenge"}') == 1

    origin.everyone("page")  # the challenge lifts
    lifted = time.monotonic()

    def stored():
        answers = [requests.get(f"{service.url}/getBookInfo", params={"url": b}, timeout=10) for b in books]
        return all(a.status_code == 200 for a in answers)

    wait_until(stored, 30, 0.2, "every book to be stored")
    took = time.monotonic() - lifted
    assert sorted(a.book_id for a in origin.fetches()[-len(books) :]) == sorted(str(100 + n) for n in range(30))
    assert took < 3 + 30 / 20 + 5  # one probe interval, the books at FETCH_RATE, and slack
    attempts = [int(redis.hget(f"goodreads:status:{100 + n}", "attempts")) for n in range(30)]
    assert attempts == [1] * 30  # no attempt spent on the challenge
    assert requests.get(f"{service.url}/readyz", timeout=10).json()["origin"]["state"] == "ok"
    service.stop()
    assert warnings(service, "origin paused: every worker stops fetching") == 1
    assert warnings(service, "origin resumed: Goodreads serves pages again") == 1


def test_book_pages_loading_the_challenge_script_are_stored_and_never_pause(make_service, origin, redis):
    """goodreads.com's ordinary pages load AWS WAF's challenge.js since September 2026: books."""
    origin.everyone("wafscript")
    service = make_service(workers=2, FETCH_RATE="20")
    books = links(600, 10)
    requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10)

    def stored():
        answers = states(service, books)
        assert not any(a.get("status") == "paused" for a in answers), answers
        return all("title" in a for a in answers)

    wait_until(stored, 30, 0.2, "every book to be stored")
    assert sorted(a.book_id for a in origin.fetches()) == sorted(str(600 + n) for n in range(10))  # once each
    assert not redis.hexists("goodreads:origin", "since")  # the origin's state never changed
    service.stop()
    assert warnings(service, "origin paused: every worker stops fetching") == 0


@pytest.mark.parametrize(
    ("step", "words"),
    [
        ("challenge", "challenge"),
        ("challengepage", "challenge page"),
        ("interstitial", "HTTP 200 (a bot challenge, a challenge page)"),
        ("captcha", "CAPTCHA"),
        ("403", "refused"),
    ],
)
def test_every_kind_of_no_pauses_the_fleet(make_service, origin, step, words):
    origin.everyone(step)
    service = make_service(workers=2, ORIGIN_PROBE_INTERVALS="30")
    books = links(200, 8)
    requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10)
    answers = wait_until(lambda: all_paused(service, books), 30, 0.3, "every book to be paused")
    assert all(words in a["reason"] and "attempts" not in a for a in answers)
    assert len(origin.requests()) <= 1 + 3 + 1
    batch = requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10).json()
    assert requests.get(f"{service.url}/batches/{batch['batch_id']}", timeout=10).json()["counts"]["paused"] == 8


def test_books_in_the_queue_while_paused_say_paused_until_the_next_probe(make_service, origin, redis):
    origin.everyone("waf")
    service = make_service(workers=1, ORIGIN_PROBE_INTERVALS="60")
    requests.post(f"{service.url}/parseGoodreadsLinks", json=links(700, 3), timeout=10)
    wait_until(lambda: redis.hget("goodreads:origin", "state") not in (None, b"ok"), 30, 0.1, "the fleet to pause")
    probe_at = float(redis.hget("goodreads:origin", "next_probe_at"))
    books = links(710, 40)
    batch = requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10).json()
    assert batch["counts"]["queued"] == 40
    seen = set()
    for _ in range(3):  # at once, and as the worker parks them: in the queue or parked alike
        seen |= {redis.hget(f"rq:job:book-{710 + n}", "status") for n in range(40)}
        answers = [a for a in states(service, books) if a["status"] != "running"]  # the one job parking itself
        assert len(answers) >= 39 and all(a["status"] == "paused" and "challenge" in a["reason"] for a in answers)
        at = [datetime.fromisoformat(a["next_attempt_at"]).timestamp() for a in answers]
        assert at == pytest.approx([probe_at] * len(answers), abs=0.01)  # the next probe
        page = requests.get(f"{service.url}/batches/{batch['batch_id']}", timeout=10).json()
        assert page["counts"]["paused"] >= 39 and page["counts"]["paused"] + page["counts"]["running"] == 40
        assert {link["status"] for link in page["links"]} <= {"paused", "running"}
    assert b"queued" in seen  # some were still in the queue when asked about


def silent_listener() -> socket.socket:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


@pytest.mark.parametrize("kind", ["nothing listening", "never answers"])
def test_an_unreachable_origin_pauses_and_past_the_bound_books_fail(make_service, kind):
    listener = silent_listener()
    port = listener.getsockname()[1]
    if kind == "nothing listening":
        listener.close()
    try:
        service = make_service(
            workers=2,
            GOODREADS_BASE_URL=f"http://127.0.0.1:{port}",
            FETCH_CONNECT_TIMEOUT="1",
            FETCH_READ_TIMEOUT="1",
            ORIGIN_PROBE_INTERVALS="2",
            ORIGIN_PAUSE_MAX="6",
        )
        books = links(300, 6)
        requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10)
        answers = wait_until(lambda: all_paused(service, books), 30, 0.3, "every book to be paused")
        assert all("unreachable" in a["reason"] for a in answers)
        this_host = "check this host's network or FETCH_PROXY; the demo origin runs without Goodreads"
        assert all((this_host in a["reason"]) == (kind == "nothing listening") for a in answers)

        def failed():
            answers = states(service, books)
            return answers if all(a["status"] == "failed" for a in answers) else None

        answers = wait_until(failed, 40, 0.5, "books paused past ORIGIN_PAUSE_MAX to fail")
        assert all("unreachable" in a["reason"] and "ORIGIN_PAUSE_MAX" in a["reason"] for a in answers)
        service.stop()
        assert warnings(service, "origin paused: every worker stops fetching") == 1
        assert not any("Traceback" in path.read_text() for path in service.log_dir.glob("worker-*.log"))
    finally:
        listener.close()


def test_cookies_proxy_and_robots_txt(make_service, origin, redis, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\t{SECRET}\n")
    origin.require_cookie = f"sid={SECRET}"
    origin.robots_txt = "User-agent: *\nDisallow: /book/show/403\n"
    origin.behave("402", "redirect:http://127.0.0.2:9/book/show/402")
    proxy = ForwardProxy()
    proxy.start()
    try:
        service = make_service(workers=2, GOODREADS_COOKIES_FILE=str(cookies), FETCH_PROXY=proxy.url, RETRY_MAX="0")
        books = links(400, 4)
        requests.post(f"{service.url}/parseGoodreadsLinks", json=books, timeout=10)

        def settled():
            answers = states(service, books)
            return answers if all(a.get("status") not in ("queued", "running", "retrying") for a in answers) else None

        answers = wait_until(settled, 30, 0.3, "the books to settle")
        assert "title" in answers[0] and "title" in answers[1]
        assert answers[2]["status"] == "blocked" and "another host" in answers[2]["reason"]
        assert answers[3]["status"] == "blocked" and "robots.txt" in answers[3]["reason"]
        assert not origin.fetches("403")
        assert all(SECRET in (a.cookie or "") for a in origin.fetches())
        assert sorted(proxy.seen) == sorted(f"{origin.url}{a.path}" for a in origin.requests())

        # The operator exports a fresh session: the next books carry the new cookie, no restart.
        origin.require_cookie = "sid=renewed-session"
        cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\trenewed-session\n")
        requests.post(f"{service.url}/parseGoodreadsLinks", json=links(410, 2), timeout=10)
        wait_until(lambda: all("title" in a for a in states(service, links(410, 2))), 30, 0.3, "renewed books")
        service.stop()
        logged = service.logs()
        assert SECRET not in logged and "renewed-session" not in logged
        for key in redis.scan_iter():
            if redis.type(key) == b"string":
                assert SECRET.encode() not in redis.get(key)
            elif redis.type(key) == b"hash":
                assert all(SECRET.encode() not in v for v in redis.hvals(key))
    finally:
        proxy.stop()


def test_the_sample_origin_serves_the_service(tmp_path, redis_server):
    """``python -m tests.origin honcho start``'s origin: a newcomer's books are stored within seconds."""
    Redis.from_url(redis_server.url).flushall()
    sample = Origin()
    sample.start()
    try:
        service = Service(redis_server.url, sample.url, tmp_path)
        service.start_web()
        service.start_worker()
        requests.post(f"{service.url}/parseGoodreadsLinks", json=links(500, 3), timeout=10)
        wait_until(lambda: all("title" in a for a in states(service, links(500, 3))), 20, 0.3, "sample books")
        service.stop()
    finally:
        sample.stop()
