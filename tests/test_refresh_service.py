"""Refresh end to end: the worker's periodic round fetches only stale books again, and a user's
links are fetched before the refresh jobs waiting beside them."""

from __future__ import annotations

import time

import pytest
import requests

from books.settings import Settings
from books.store import BookStore
from tests.processes import wait_until

pytestmark = pytest.mark.e2e

HOUR = 3600


def age(redis, book_id: str, seconds: float) -> None:
    """Make a stored record look ``seconds`` old."""
    store = BookStore(redis, Settings().key_prefix)
    then = time.time() - seconds
    redis.zadd(store.stored_at_key, {book_id: then})
    redis.hset(store.progress.key(book_id), mapping={"stored_at": then, "at": then})


def fetched(origin, book_id: str) -> int:
    return len(origin.fetches(book_id))


def test_a_refresh_round_fetches_only_the_stale_books_again(make_service, origin, redis):
    service = make_service(REFRESH_EVERY="1", REFRESH_AFTER=str(HOUR))
    links = [f"goodreads.com/book/show/{n}" for n in (901, 902, 903)]
    requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=10)
    wait_until(lambda: all(fetched(origin, n) == 1 for n in ("901", "902", "903")), 30, 0.1, "the first fetches")
    wait_until(lambda: redis.zcard(BookStore(redis).stored_at_key) == 3, 10, 0.1, "the records")
    age(redis, "901", 2 * HOUR)
    age(redis, "902", 3 * HOUR)
    wait_until(lambda: fetched(origin, "901") == fetched(origin, "902") == 2, 30, 0.1, "the refresh")
    time.sleep(3)  # three more rounds: the refreshed records are fresh again
    assert [fetched(origin, n) for n in ("901", "902", "903")] == [2, 2, 1]
    metrics = requests.get(f"{service.url}/metrics", timeout=10).text
    assert "goodreads_stale_records 0.0" in metrics
    assert "goodreads_oldest_record_stored_timestamp_seconds" in metrics


def test_a_user_s_links_are_fetched_before_refresh_jobs(make_service, origin, redis):
    store = BookStore(redis)
    for book_id in ("911", "912"):
        store.save_record(book_id, {"title": f"book {book_id}"})
        age(redis, book_id, 2 * HOUR)
    origin.behave("930", "slow:3", "page")
    service = make_service(REFRESH_EVERY="1", REFRESH_AFTER=str(HOUR))
    post = f"{service.url}/parseGoodreadsLinks"
    requests.post(post, json=["goodreads.com/book/show/930"], timeout=10)
    wait_until(lambda: fetched(origin, "930"), 10, 0.05, "the slow fetch to begin")
    # while the worker is busy, a refresh round comes due and the user sends more links
    requests.post(post, json=["goodreads.com/book/show/921", "goodreads.com/book/show/922"], timeout=10)
    wait_until(lambda: fetched(origin, "911") and fetched(origin, "912"), 30, 0.1, "the refresh jobs")
    order = [arrival.book_id for arrival in origin.fetches()]
    assert order == ["930", "921", "922", "911", "912"]  # 911 was aged first: the oldest first
