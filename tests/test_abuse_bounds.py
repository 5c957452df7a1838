"""One anonymous client must not stop the service for everyone: each attack run against the
real processes (gunicorn, rq workers, redis-server, the local origin), and its bound asserted."""

from __future__ import annotations

import base64
import http.client
import json
import pickle
import socket
import threading
import time
from collections import Counter

import pytest
import requests
from rq import Queue

from books.links import BookId
from books.store import BookStore
from tests.listener import DripListener, Listener, Received, verified
from tests.origin import book_page
from tests.processes import Service, wait_until
from tests.slow_clients import BODY_HEAD, SlowClients, percentile, timed_gets
from tests.test_abuse_limits import RunsCode
from worker.parser import parse_book_page

pytestmark = pytest.mark.e2e
LINK = "https://www.goodreads.com/book/show/{}"


def post(url: str, *ids: int, **kwargs) -> requests.Response:
    return requests.post(f"{url}/parseGoodreadsLinks", json=[LINK.format(n) for n in ids], timeout=30, **kwargs)


def test_a_forged_x_forwarded_for_is_ignored_unless_a_trusted_proxy_sent_it(make_service):
    """gunicorn reachable directly, next to a proxy at 192.0.2.1: a client changing its
    X-Forwarded-For on every POST still spends one budget; the same headers from a trusted proxy
    name the client, and the dashboard refuses the outside client the proxy names."""
    direct = make_service(workers=0, POST_BUDGET="1", TRUSTED_PROXY_HOPS="1", TRUSTED_PROXY_ADDRESSES="192.0.2.1")
    forged = [post(direct.url, n, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in (1, 2)]
    assert forged == [202, 429]
    direct.stop()
    proxied = make_service(workers=0, POST_BUDGET="1", TRUSTED_PROXY_HOPS="1", TRUSTED_PROXY_ADDRESSES="127.0.0.0/8")
    named = [post(proxied.url, n, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in (3, 4)]
    assert named == [202, 202]
    dashboard = requests.get(f"{proxied.url}/rqstatus/", headers={"X-Forwarded-For": "203.0.113.5"}, timeout=10)
    assert dashboard.status_code == 403 and dashboard.json()["error"] == "dashboard_local_only"


def test_callbacks_reach_only_the_allowed_port_never_the_service_itself_and_are_signed_with_a_time(
    redis_server, origin, tmp_path
):
    """The operator allows the loopback's web and Redis ports along with its receiver's: a
    callback to the dashboard's requeue or to Redis is refused; the receiver's delivery carries
    a timestamp under its signature, so a recorded one cannot be sent again later."""
    secret = "s3cret-callbacks"
    with Listener() as listener:
        service = Service(redis_server.url, origin.url, tmp_path, CALLBACK_SECRET=secret, CALLBACK_CHECK_INTERVAL="1")
        service.env["CALLBACK_ALLOWED_HOSTS"] = (
            f"127.0.0.1:{listener.port},127.0.0.1:{service.port},127.0.0.1:{redis_server.port}"
        )
        try:
            service.start_web()
            service.start_workers(1)
            for port, path in ((service.port, "/rqstatus/requeue/bookInfoParser"), (redis_server.port, "/")):
                refused = post(service.url, 1, params={"callback_url": f"http://127.0.0.1:{port}{path}"})
                assert refused.status_code == 400
                assert refused.json()["message"] == "callbacks never go to this service's own web or Redis address"
            other_port = post(service.url, 1, params={"callback_url": f"http://127.0.0.1:{listener.port + 1}/"})
            assert other_port.status_code == 400 and "CALLBACK_ALLOWED_HOSTS" in other_port.json()["message"]
            accepted = post(service.url, 1, params={"callback_url": f"{listener.url}/done"})
            assert accepted.status_code == 202
            wait_until(lambda: listener.received, 30, 0.1, "the callback")
        finally:
            service.stop()
    delivered = listener.received[0]
    assert verified(delivered, secret)
    replayed_later = {**delivered.headers, "X-Signature-Timestamp": str(int(time.time()) + 3600)}
    assert not verified(Received(delivered.path, replayed_later, delivered.body), secret)


def stored(service: Service, book_id: int) -> bool:
    lookup = requests.get(f"{service.url}/getBookInfo", params={"url": LINK.format(book_id)}, timeout=10)
    return lookup.status_code == 200


@pytest.mark.serial
def test_callback_receivers_that_drip_their_answer_never_hold_a_user_s_book(make_service):
    """Six batches called back to a receiver that answers a byte every 0.5 s, and never ends:
    each delivery is cut at CALLBACK_TIMEOUT (2 s), one at a time to that host, and a user's
    new book is fetched within 6 s (a delivery in hand ends first; the book goes before the
    rest). Before, each delivery held a worker for JOB_TIMEOUT."""
    with DripListener(interval=0.5) as drip:
        service = make_service(
            workers=2,
            CALLBACK_ALLOWED_HOSTS=f"127.0.0.1:{drip.port}",
            CALLBACK_SECRET="s",
            CALLBACK_TIMEOUT="2",
            CALLBACK_HOST_CONCURRENCY="1",
            CALLBACK_CHECK_INTERVAL="1",
            CALLBACK_RETRY_INTERVALS="1,1,1",
        )
        for n in range(6):
            assert post(service.url, 900 + n, params={"callback_url": f"{drip.url}/done"}).status_code == 202
        wait_until(lambda: drip.open_now, 30, 0.05, "the first delivery")
        started = time.monotonic()
        assert post(service.url, 999).status_code == 202
        wait_until(lambda: stored(service, 999), 20, 0.1, "the user's book")
        took = time.monotonic() - started
        time.sleep(4)  # more deliveries and retries come and go
    print(f"the user's book stored {took:.2f} s after its POST; deliveries lasted {sorted(drip.stays)}")
    assert took < 6, f"the user's book took {took:.1f} s"
    assert drip.most_at_once == 1
    assert len(drip.stays) >= 2 and max(drip.stays) < 3, drip.stays


def dashboard_get(port: int, source: str, auth: tuple[str, str], cookie: str = "") -> tuple[int, str]:
    """GET /rqstatus/ from the loopback address ``source`` (every 127.x address is this host's);
    the status and any cookie set."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    token = base64.b64encode(":".join(auth).encode()).decode()
    headers = {"Authorization": f"Basic {token}", **({"Cookie": cookie} if cookie else {})}
    try:
        connection.request("GET", "/rqstatus/", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, (response.getheader("Set-Cookie") or "").partition(";")[0]
    finally:
        connection.close()


def test_password_guesses_from_many_addresses_are_bounded_and_the_operator_stays_in(make_service, redis):
    """200 guesses from 50 addresses (127.0.0.2–51): at most DASHBOARD_GLOBAL_FAILURES (20) are
    checked; the operator's browser, which logged in before, still gets in from a locked
    address; a new browser on that address waits. A job whose data the dashboard refuses is
    not requeued."""
    user, password = "operator", "s3cret-for-tests"
    service = make_service(
        workers=0,
        RQ_DASHBOARD_USERNAME=user,
        RQ_DASHBOARD_PASSWORD=password,
        DASHBOARD_LOGIN_FAILURES="2",
        DASHBOARD_GLOBAL_FAILURES="20",
    )
    status, cookie = dashboard_get(service.port, "127.0.0.2", (user, password))
    assert status == 200 and cookie.startswith("rq_dashboard_operator=")
    guesses = [dashboard_get(service.port, f"127.0.0.{2 + n % 50}", (user, f"guess-{n}"))[0] for n in range(200)]
    assert guesses.count(401) <= 20 and guesses.count(401) + guesses.count(429) == 200, guesses
    assert dashboard_get(service.port, "127.0.0.2", (user, password), cookie)[0] == 200
    assert dashboard_get(service.port, "127.0.0.2", (user, password))[0] == 429

    queue = Queue("bookInfoParser", connection=redis)
    crafted = queue.enqueue("worker.tasks.parse_book", "5", job_id="book-5")
    queue.remove(crafted)
    crafted.set_status("failed")
    crafted.failed_job_registry.add(crafted, ttl=600)
    redis.hset(crafted.key, "data", pickle.dumps(RunsCode(str(service.log_dir / "ran"))))
    requeue = requests.post(
        f"{service.url}/rqstatus/job/book-5/requeue", auth=(user, password), headers={"Cookie": cookie}, timeout=10
    )
    assert requeue.status_code == 422 and requeue.json()["error"] == "unsafe_job_data"
    assert queue.job_ids == [] and queue.failed_job_registry.get_job_ids() == ["book-5"]
    assert not (service.log_dir / "ran").exists()


def trickled_post(port: int, source: str, interval: float, give_up: float = 30) -> tuple[bytes, float]:
    """A POST whose body comes a byte every ``interval`` seconds and never ends: the status line
    the service answers with, and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=interval, source_address=(source, 0)) as sock:
        sock.sendall(BODY_HEAD)
        while time.monotonic() - started < give_up:
            try:
                answer = sock.recv(4096)
                return answer.partition(b"\r\n")[0], time.monotonic() - started
            except TimeoutError:
                sock.sendall(b" ")
    raise AssertionError(f"no answer within {give_up} s")


@pytest.mark.serial
def test_slow_post_bodies_from_two_addresses_leave_lookups_answered(make_service):
    """1,100 POSTs trickling their body a byte every 0.5 s from two addresses, more than the
    1,000 connections a gunicorn worker serves: each address holds at most
    MAX_CLIENT_CONNECTIONS (100) of them, each body is cut at REQUEST_BODY_TIMEOUT (3 s here),
    and lookups from a third address are all answered, p99 under 1 s."""
    service = make_service(workers=0, WEB_CONCURRENCY="1", REQUEST_BODY_TIMEOUT="3")
    storm = SlowClients(service.port, headers=0, bodies=1100, interval=0.5, sources=("127.0.0.2", "127.0.0.3"))
    with storm:
        time.sleep(2)  # every socket opened, its POST under way or refused
        results = timed_gets(f"{service.url}/getBookInfo", 6, {"url": LINK.format(1)})
        status_line, took = trickled_post(service.port, "127.0.0.4", 0.5)
        posted = post(service.url, 1)
    statuses = {status for status, _ in results}
    p99 = percentile([seconds for _, seconds in results], 0.99)
    print(f"{len(results)} lookups in 6 s, p99 {p99 * 1000:.0f} ms; a trickled body cut after {took:.1f} s")
    assert statuses == {404} and len(results) >= 20, (statuses, len(results))
    assert p99 < 1.0, f"p99 {p99:.3f} s over {len(results)} lookups"
    assert status_line.startswith(b"HTTP/1.1 408") and 3 <= took < 4.5, (status_line, took)
    assert posted.status_code == 202
    assert storm.reconnects >= 900  # the connections past the two addresses' caps, refused and tried again


class Attackers:
    """``count`` threads each doing ``attack`` (which returns an HTTP status) over and over, as
    fast as they are answered, until the ``with`` block ends; the statuses counted."""

    def __init__(self, count: int, attack) -> None:
        self.attack = attack
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self) -> Attackers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    status = self.attack(session)
                except requests.RequestException:
                    status = 0
                with self.lock:
                    self.statuses[status] += 1


def store_records(redis, count: int) -> None:
    template = parse_book_page(book_page("1"), BookId("1"))
    store = BookStore(redis)
    for n in range(count):
        store.save_record(str(800_000 + n), {**template, "book_id": str(800_000 + n)})


UNBOUNDED: dict[str, str] = {}


@pytest.mark.serial
@pytest.mark.parametrize("attack", ["exports", "large_posts"])
def test_heavy_anonymous_requests_leave_lookups_answered(make_service, redis, attack):
    """One gunicorn worker. Eight clients exporting 2,000 records over and over: two streams at a
    time (MAX_EXPORTS), the rest 429. Or one client sending 3.3 MB POST bodies (10,000 links)
    from four connections at once: one parsed at a time, the others 429. Lookups meanwhile: all
    answered, p99 under 1 s."""
    store_records(redis, 10_000)
    service = make_service(workers=0, WEB_CONCURRENCY="1", **UNBOUNDED)

    def export(session: requests.Session) -> int:
        with session.get(f"{service.url}/books", stream=True, timeout=30) as answer:
            for _ in answer.iter_content(65536):
                pass
            return answer.status_code

    body = json.dumps([f"https://www.goodreads.com/book/show/{n}-{'a' * 290}" for n in range(10_000)]).encode()

    def large_post(session: requests.Session) -> int:
        headers = {"Content-Type": "application/json"}
        return session.post(f"{service.url}/parseGoodreadsLinks", data=body, headers=headers, timeout=30).status_code

    attackers = Attackers(8, export) if attack == "exports" else Attackers(4, large_post)
    with attackers:
        time.sleep(1)
        results = timed_gets(f"{service.url}/getBookInfo", 6, {"url": LINK.format(800_001)})
    p99 = percentile([seconds for _, seconds in results], 0.99)
    print(f"{attack}: {len(results)} lookups in 6 s, p99 {p99 * 1000:.0f} ms; attackers got {dict(attackers.statuses)}")
    assert {status for status, _ in results} == {200} and len(results) >= 20, len(results)
    assert p99 < 1.0, f"p99 {p99:.3f} s over {len(results)} lookups"
    served, refused = (200, 429) if attack == "exports" else (202, 429)
    assert attackers.statuses[served] >= 1 and attackers.statuses[refused] >= 1, attackers.statuses
    assert set(attackers.statuses) <= {served, refused}, attackers.statuses
