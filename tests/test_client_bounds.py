"""One client must not fill Redis with batch data nor the queue with its books: the bytes of
batches kept per client and in all, and the books one client may have waiting. In process,
then through the real processes with the attack's own figures turned around."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
import requests
from redis import Redis

from app import create_app
from books.batches import Batches, NewBatch
from tests.processes import Service, wait_until

LINK = "https://www.goodreads.com/book/show/{}"
# A link refused for its host, echoed at its first 300 characters: what the attack sent.
LONG_REFUSED = "https://evil.example/" + "a" * 400


def addressed(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def attack_body(book: int, links: int) -> list[str]:
    """One book and ``links`` long links that are refused: batch data, one book queued."""
    return [LINK.format(book), *[LONG_REFUSED] * links]


def kept_bytes(redis: Redis, batches: Batches, batch_id: str) -> int:
    return sum(redis.memory_usage(batches.key(batch_id, part), samples=0) or 0 for part in ("", "links", "books"))


@pytest.mark.parametrize(
    "entries",
    [
        [(LINK.format(n), str(n), None) for n in range(1, 5001)],
        [(LINK.format(n) + ".A_Title-and-more", str(n), None) for n in range(1, 5001)],
        [(LONG_REFUSED[:300], None, "'evil.example' is not a Goodreads host")] * 5000,
        [(LINK.format(5) + "?" + "q" * 250, "5", None)] * 5000,
        [(LINK.format(1), "1", None)],
    ],
    ids=["canonical", "slugs", "long-refused", "repeated-long", "one"],
)
def test_a_batchs_size_is_at_or_a_little_above_what_redis_keeps(redis, entries):
    batches = Batches(redis, "goodreads", 600)
    new = NewBatch.of(entries)
    kept = kept_bytes(redis, batches, batches.create(new))
    assert kept <= new.size <= 2 * kept


def test_a_canonical_link_is_kept_as_its_book_id_and_read_back_as_sent(client, redis):
    sent = [LINK.format(5907), " " + LINK.format(5907), LINK.format(42) + ".Title", "goodreads.com/nope"]
    batch_id = client.post("/parseGoodreadsLinks", json=sent).json["batch_id"]
    assert redis.lrange(f"goodreads:batch:{batch_id}:links", 0, -1) == [
        b'"5907"',
        b'[" https://www.goodreads.com/book/show/5907","5907",null]',
        b'["https://www.goodreads.com/book/show/42.Title","42",null]',
        b'["goodreads.com/nope",null,"not a Goodreads book link: the path must be /book/show/<id>"]',
    ]
    links = client.get(f"/batches/{batch_id}").json["links"]
    assert [link["link"] for link in links] == sent
    assert [link.get("book_id") for link in links] == ["5907", "5907", "42", None]


def test_a_clients_batches_are_bounded_in_bytes_and_the_refusal_queues_nothing(configure, redis):
    settings = configure(CLIENT_BATCH_BYTES="300000", BATCH_TTL="800")  # a POST here: about 118 KB
    client = create_app(settings).test_client()
    answers = [client.post("/parseGoodreadsLinks", json=attack_body(n, 300)) for n in range(1, 6)]
    assert [answer.status_code for answer in answers] == [202, 202, 429, 429, 429]
    refused = answers[-1]
    assert refused.json["error"] == "client_batches_full" and "CLIENT_BATCH_BYTES" in refused.json["message"]
    assert 700 < int(refused.headers["Retry-After"]) <= 800 + 100  # BATCH_TTL, and a window of an eighth of it
    assert not redis.exists("rq:job:book-3", "rq:job:book-5")
    batches = Batches(redis, "goodreads", 800)
    kept = sum(kept_bytes(redis, batches, answer.json["batch_id"]) for answer in answers[:2])
    assert kept <= 300_000
    other = client.post("/parseGoodreadsLinks", json=attack_body(6, 300), **addressed("203.0.113.9"))
    assert other.status_code == 202  # another client has its own share
    small = client.post("/parseGoodreadsLinks", json=[LINK.format(7)])
    assert small.status_code == 202, "a small batch still fits the client's last bytes"


def test_batches_of_every_client_together_are_bounded_with_503(configure, redis):
    client = create_app(configure(CLIENT_BATCH_BYTES="0", MAX_BATCH_BYTES="400000")).test_client()
    statuses = [
        client.post("/parseGoodreadsLinks", json=attack_body(n, 300), **addressed(f"198.51.100.{n}")).status_code
        for n in range(1, 6)
    ]
    assert statuses == [202, 202, 202, 503, 503]
    refused = client.post("/parseGoodreadsLinks", json=attack_body(9, 300), **addressed("198.51.100.9"))
    assert refused.json["error"] == "batches_full" and "MAX_BATCH_BYTES" in refused.json["message"]
    assert int(refused.headers["Retry-After"]) > 0 and not redis.exists("rq:job:book-9")


@pytest.mark.parametrize("bound", ["CLIENT_BATCH_BYTES", "MAX_BATCH_BYTES"])
def test_a_request_whose_batch_alone_passes_a_bound_is_413(configure, redis, bound):
    client = create_app(configure(**{bound: "100000"})).test_client()
    refused = client.post("/parseGoodreadsLinks", json=attack_body(1, 300))  # about 118 KB
    assert refused.status_code == 413 and refused.json["error"] == "batch_too_large"
    assert bound in refused.json["message"] and not redis.exists("rq:job:book-1")


def test_batch_bytes_counted_in_windows_expire_with_the_batches(configure, redis):
    client = create_app(configure(CLIENT_BATCH_BYTES="200000", BATCH_TTL="2")).test_client()  # a POST: 156 KB
    assert client.post("/parseGoodreadsLinks", json=attack_body(1, 400)).status_code == 202
    assert client.post("/parseGoodreadsLinks", json=attack_body(2, 400)).status_code == 429
    counts = redis.keys("goodreads:batch-bytes:*")
    assert sorted(key.decode().rsplit(":", 1)[0] for key in counts) == [
        "goodreads:batch-bytes:all",
        "goodreads:batch-bytes:client:127.0.0.1",
    ]
    assert all(0 < redis.ttl(key) <= 2 + 1 for key in counts)  # the batch's TTL and a window of 1 s
    wait_until(lambda: not redis.keys("goodreads:batch-bytes:*"), 5, 0.1, "the counts to expire")
    assert client.post("/parseGoodreadsLinks", json=attack_body(2, 400)).status_code == 202


def test_a_client_has_a_share_of_the_queue_and_books_done_leave_it(configure, client, redis, origin, run_jobs):
    app = create_app(configure(CLIENT_QUEUED_BOOKS="5", MAX_QUEUED_BOOKS="100"))
    client = app.test_client()
    post = lambda *ids, **kw: client.post("/parseGoodreadsLinks", json=[LINK.format(n) for n in ids], **kw)  # noqa: E731
    assert post(1, 2).status_code == 202
    assert post(1, 2).status_code == 202  # each book asked for counts: 2 waiting, 2 asked for
    refused = post(3, 4, 5, 6)
    assert refused.status_code == 429 and refused.json["error"] == "client_queue_full"
    assert refused.json["message"].startswith("2 books of this client are waiting, and at most 5 may")
    assert refused.headers["Retry-After"] and not redis.exists("rq:job:book-3")
    assert post(3, 4, 5, 6, **addressed("203.0.113.7")).status_code == 202  # another client's share
    assert post(3, 4, 5).status_code == 202  # up to the share
    assert redis.zcard("goodreads:client-books:127.0.0.1") == 2  # 3, 4, 5 count in the other client's
    run_jobs()  # every book fetched
    assert post(7, 8, 9, 10, 11).status_code == 202  # the done ones left the share
    assert redis.zcard("goodreads:client-books:127.0.0.1") == 5


def test_no_share_and_no_bounds_keep_no_counts(configure, redis):
    settings = configure(CLIENT_QUEUED_BOOKS="0", CLIENT_BATCH_BYTES="0", MAX_BATCH_BYTES="0")
    client = create_app(settings).test_client()
    assert client.post("/parseGoodreadsLinks", json=attack_body(1, 10)).status_code == 202
    assert not redis.keys("goodreads:client-books:*") and not redis.keys("goodreads:batch-bytes:*")


# Through the real processes.

ATTACKER, USER = "192.0.2.66", "203.0.113.10"


def post(service: Service, links: list[str], address: str) -> requests.Response:
    return requests.post(
        f"{service.url}/parseGoodreadsLinks", json=links, headers={"X-Forwarded-For": address}, timeout=30
    )


def stored(service: Service, ids: range) -> bool:
    return all(
        requests.get(f"{service.url}/getBookInfo", params={"url": LINK.format(n)}, timeout=10).status_code == 200
        for n in ids
    )


class Lookups(threading.Thread):
    """A user looking a book up, again and again, while the attack runs: every answer's status
    and time."""

    def __init__(self, service: Service, link: str) -> None:
        super().__init__(daemon=True)
        self.url, self.link = f"{service.url}/getBookInfo", link
        self.times: list[float] = []
        self.statuses: set[int] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stopping.is_set():
                started = time.monotonic()
                self.statuses.add(session.get(self.url, params={"url": self.link}, timeout=10).status_code)
                self.times.append(time.monotonic() - started)

    def stop(self) -> None:
        self.stopping.set()
        self.join(15)

    def p99(self) -> float:
        return statistics.quantiles(self.times, n=100)[98]


@pytest.mark.e2e
def test_batches_flooding_from_one_then_many_addresses_keep_redis_bounded_and_a_user_served(make_service, redis):
    """The attack filled a 256 MB Redis with 81 POSTs of 10,000 long links. Here POSTs of 2,000
    such links (780 KB of batch data each), against 1 MB a client and 4 MB in all: one address
    gets one batch kept and a user's books are fetched meanwhile; from 20 addresses (31 MB
    asked for) Redis keeps about the bound, and lookups are answered, p99 under 1 s."""
    service = make_service(
        workers=1,
        TRUSTED_PROXY_HOPS="1",
        TRUSTED_PROXY_ADDRESSES="127.0.0.1",
        CLIENT_BATCH_BYTES="1000000",
        MAX_BATCH_BYTES="4000000",
    )
    before = redis.info("memory")["used_memory"]
    alone = [post(service, attack_body(1000 + n, 2000), ATTACKER) for n in range(20)]
    assert [answer.status_code for answer in alone] == [202] + [429] * 19
    assert alone[-1].json()["error"] == "client_batches_full" and int(alone[-1].headers["Retry-After"]) > 0
    started = time.monotonic()
    assert post(service, [LINK.format(n) for n in range(1, 4)], USER).status_code == 202
    wait_until(lambda: stored(service, range(1, 4)), 30, 0.2, "the user's books")
    user_took = time.monotonic() - started
    assert user_took < 30

    lookups = Lookups(service, LINK.format(1))
    lookups.start()
    many = [post(service, attack_body(2000 + n, 2000), f"198.51.100.{n % 20}") for n in range(40)]
    lookups.stop()
    assert lookups.statuses == {200} and lookups.p99() < 1.0, (lookups.statuses, lookups.p99())
    statuses = [answer.status_code for answer in many]
    # 5 batches of 780 KB fit in 4 MB, one is kept already; an address with one kept is at its share.
    assert statuses == [202] * 4 + [503] * 16 + [429] * 4 + [503] * 16
    refused = next(answer for answer in many if answer.status_code == 503)
    assert refused.json()["error"] == "batches_full" and int(refused.headers["Retry-After"]) > 0
    grown = redis.info("memory")["used_memory"] - before
    assert grown < 4_000_000 * 1.25 + 1_000_000, grown  # the bound, the few books' jobs and records, Redis's own
    print(
        f"\nRedis grew {grown / 1e6:.1f} MB (bound 4 MB, 31 MB asked for); the user's books stored in "
        f"{user_took:.1f} s; {len(lookups.times)} lookups during the flood, p99 {lookups.p99() * 1000:.0f} ms"
    )
    assert stored(service, range(1, 4))  # lookups go on


@pytest.mark.e2e
def test_one_client_filling_the_queue_leaves_room_for_others(make_service, redis):
    """The attack queued 1M books from one client in 28 s, then everyone got 503 queue_full.
    Here one client's share is 300 books of a bound of 1,000: past its share it gets 429,
    another user's POST is taken, and their books are stored within 60 s."""
    service = make_service(
        workers=2,
        TRUSTED_PROXY_HOPS="1",
        TRUSTED_PROXY_ADDRESSES="127.0.0.1",
        CLIENT_QUEUED_BOOKS="300",
        MAX_QUEUED_BOOKS="1000",
    )
    answers = [
        post(service, [LINK.format(n) for n in range(start, start + 100)], ATTACKER) for start in range(1000, 2000, 100)
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses[:3] == [202, 202, 202] and 429 in statuses and 503 not in statuses
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.json()["error"] == "client_queue_full" and refused.headers["Retry-After"]
    assert redis.llen("rq:queue:bookInfoParser") + redis.zcard("rq:scheduled:bookInfoParser") <= 300

    started = time.monotonic()
    assert post(service, [LINK.format(n) for n in range(1, 11)], USER).status_code == 202
    wait_until(lambda: stored(service, range(1, 11)), 60, 0.5, "the user's books behind the attacker's share")
    user_took = time.monotonic() - started
    assert user_took < 60
    print(f"\nthe attacker's POSTs of 100 books: {statuses}; the user's 10 books stored in {user_took:.1f} s")
    # Books done leave the share: the attacker may queue again, within it.
    wait_until(lambda: redis.llen("rq:queue:bookInfoParser") == 0, 60, 0.5, "the queue to drain")
    assert post(service, [LINK.format(n) for n in range(3000, 3100)], ATTACKER).status_code == 202
