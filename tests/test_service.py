"""End to end: Redis, a local origin, gunicorn and rq worker from the Procfile, over HTTP."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.processes import wait_until

pytestmark = pytest.mark.e2e

LINK_FORMS = [
    "https://www.goodreads.com/book/show/{id}",
    "http://goodreads.com/book/show/{id}.Some_Title",
    "https://www.goodreads.com/book/show/{id}-some-title/",
    "https://m.goodreads.com/book/show/{id}",
    "https://www.goodreads.com/en/book/show/{id}-x?from_search=true&qid=x&rank=1#reviews",
    "  www.goodreads.com/book/show/{id}  ",
]


def book_info(service, link: str) -> requests.Response:
    return requests.get(f"{service.url}/getBookInfo", params={"url": link}, timeout=10)


def wait_for_status(service, link: str, status: str, timeout: float = 30) -> dict:
    def settled():
        body = book_info(service, link).json()
        return body if body.get("status", "stored" if "title" in body else None) == status else None

    return wait_until(settled, timeout, 0.1, f"{link} to become {status}")


def test_posted_links_are_fetched_parsed_stored_and_served(make_service, origin):
    service = make_service()
    response = requests.post(
        f"{service.url}/parseGoodreadsLinks",
        timeout=10,
        json=[
            "https://www.goodreads.com/book/show/5907.The_Hobbit",
            "https://www.goodreads.com/author/show/656983.J_R_R_Tolkien",
        ],
    )
    assert response.status_code == 202
    body = response.json()
    assert body["message"] == "1 book is scheduled for info parsing."
    assert body["counts"] == {
        "links": 2,
        "books": 1,
        "queued": 1,
        "already_queued": 0,
        "stored": 0,
        "not_found": 0,
        "rejected": 1,
    }
    assert body["results"][0]["job_id"] == "book-5907"
    assert body["results"][1]["outcome"] == "rejected"

    record = wait_for_status(service, "https://m.goodreads.com/book/show/5907", "stored")
    assert record["book_id"] == "5907"
    assert record["url"] == "https://www.goodreads.com/book/show/5907"
    assert record["title"] == "The Long Way Home"
    assert record["author"] == "Ann Writer"
    assert record["rating"] == 4.12
    assert record["description"].startswith("First line & more\nsecond line")
    assert record["fetched_at"].endswith("+00:00")
    assert [a.path for a in origin.fetches()] == ["/book/show/5907"]

    # Sent again in another form: a fresh record exists, nothing is fetched.
    again = requests.post(
        f"{service.url}/parseGoodreadsLinks",
        timeout=10,
        data='["https://www.goodreads.com/en/book/show/5907-the-hobbit"]',
    ).json()
    assert again["results"][0]["outcome"] == "stored"
    assert len(origin.fetches()) == 1

    # ?refresh=true fetches it again, and lookups answer the new record (not a cached copy of the old).
    for _ in range(6):
        assert book_info(service, "goodreads.com/book/show/5907").json()["title"] == "The Long Way Home"
    origin.behave("5907", "page:The Long Way Home, Revised")
    refreshed = requests.post(
        f"{service.url}/parseGoodreadsLinks?refresh=true", timeout=10, json=["https://www.goodreads.com/book/show/5907"]
    ).json()
    assert refreshed["results"][0]["outcome"] == "queued"
    wait_until(lambda: len(origin.fetches()) == 2, 30, message="the refresh fetch")
    wait_until(
        lambda: all(
            book_info(service, "goodreads.com/book/show/5907").json()["title"] == "The Long Way Home, Revised"
            for _ in range(6)
        ),
        5,
        0.1,
        "the new record",
    )


def test_a_cookie_set_while_fetching_one_book_is_not_sent_for_the_next(make_service, origin):
    service = make_service()
    origin.behave("31", "cookie:visitor=31")
    for book_id in ("31", "32"):
        requests.post(
            f"{service.url}/parseGoodreadsLinks", timeout=10, json=[f"https://www.goodreads.com/book/show/{book_id}"]
        )
        wait_for_status(service, f"https://www.goodreads.com/book/show/{book_id}", "stored")
    assert [(a.book_id, a.cookie) for a in origin.fetches()] == [("31", None), ("32", None)]


def test_twenty_concurrent_clients_sending_the_same_hundred_books_cause_a_hundred_fetches(make_service, origin):
    service = make_service(workers=2)
    book_ids = [str(1000 + n) for n in range(100)]

    def client(seed: int) -> dict:
        rng = random.Random(seed)
        links = [rng.choice(LINK_FORMS).format(id=book_id) for book_id in book_ids]
        rng.shuffle(links)
        return requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=30).json()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(client, range(20)))

    queued = sum(answer["counts"]["queued"] for answer in answers)
    assert queued == 100, [answer["counts"] for answer in answers]
    for book_id in book_ids[::10]:
        wait_for_status(service, f"https://www.goodreads.com/book/show/{book_id}", "stored", 60)
    wait_until(
        lambda: all(book_info(service, f"goodreads.com/book/show/{b}").status_code == 200 for b in book_ids),
        60,
        0.5,
        "every book to be stored",
    )
    fetched = sorted(a.book_id for a in origin.fetches())
    assert fetched == sorted(book_ids)


def test_a_sign_in_wall_ends_blocked_and_a_missing_book_ends_not_found(make_service, origin, redis):
    service = make_service()
    origin.behave("11", "signin")
    origin.behave("12", "404")
    requests.post(
        f"{service.url}/parseGoodreadsLinks",
        timeout=10,
        json=["https://www.goodreads.com/book/show/11", "https://www.goodreads.com/book/show/12"],
    )

    missing = wait_for_status(service, "https://www.goodreads.com/book/show/12", "not_found")
    assert book_info(service, "https://www.goodreads.com/book/show/12").status_code == 404
    assert missing["reason"] == "Goodreads answered HTTP 404"

    blocked = wait_for_status(service, "https://www.goodreads.com/book/show/11", "blocked", 60)
    assert book_info(service, "https://www.goodreads.com/book/show/11").status_code == 502
    assert blocked["reason"] == "Goodreads answered with a sign-in page"
    assert blocked["attempts"] == 3  # the first try and RETRY_MAX=2 retries
    assert len(origin.fetches("11")) == 3
    assert len(origin.fetches("12")) == 1
    assert not redis.exists("goodreads:book:11") and not redis.exists("goodreads:book:12")


def test_a_failed_book_can_be_sent_again(make_service, origin):
    service = make_service(RETRY_MAX="0")
    origin.behave("21", "500", "page")
    link = "https://www.goodreads.com/book/show/21"
    requests.post(f"{service.url}/parseGoodreadsLinks", json=[link], timeout=10)
    failed = wait_for_status(service, link, "failed")
    assert failed["reason"] == "Goodreads failed to answer (HTTP 500)"

    again = requests.post(f"{service.url}/parseGoodreadsLinks", json=[link], timeout=10).json()
    assert again["results"][0]["outcome"] == "queued"
    assert wait_for_status(service, link, "stored")["title"] == "The Long Way Home"


def test_status_while_queued_and_running(make_service, origin):
    service = make_service(workers=0)
    link = "https://www.goodreads.com/book/show/31"
    origin.behave("31", "slow:1.5")
    never = book_info(service, "https://www.goodreads.com/book/show/32")
    assert never.status_code == 404 and never.json()["status"] == "unknown"

    requests.post(f"{service.url}/parseGoodreadsLinks", json=[link], timeout=10)
    queued = book_info(service, link)
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    again = requests.post(f"{service.url}/parseGoodreadsLinks", json=[link], timeout=10).json()
    assert again["results"][0]["outcome"] == "already_queued"

    service.start_worker()
    assert wait_for_status(service, link, "running")["job_id"] == "book-31"
    wait_for_status(service, link, "stored")
