"""Books anyone may choose for Goodreads to refuse cannot hold the fleet paused: the probe asks
for a book Goodreads served before, and books whose refusals Goodreads does not share end on
their own. The real processes, over HTTP, during the attack."""

from __future__ import annotations

import time

import pytest
import requests

from tests.processes import wait_until

pytestmark = pytest.mark.e2e

# The longest a user's book may take from its POST to its record during the attack. Without the
# probe's own book it waited for the first probe interval at least (30 s here), pass after pass.
BOUND = 10.0
ATTACK_STEPS = ("403", "waf", "429")


def link(book_id: int) -> str:
    return f"https://www.goodreads.com/book/show/{book_id}"


def stored(service, book_id: int) -> bool:
    return requests.get(f"{service.url}/getBookInfo", params={"url": link(book_id)}, timeout=10).status_code == 200


def test_refused_books_chosen_by_a_client_do_not_hold_other_users_books(make_service, origin, redis):
    service = make_service(workers=2, FETCH_RATE="10", ORIGIN_PROBE_INTERVALS="30,60")
    post = f"{service.url}/parseGoodreadsLinks"
    requests.post(post, json=[link(800 + n) for n in range(3)], timeout=10)
    wait_until(lambda: all(stored(service, 800 + n) for n in range(3)), 30, 0.2, "the first books")

    attack = [900 + n for n in range(3)]
    for book_id, step in zip(attack, ATTACK_STEPS, strict=True):
        origin.behave(str(book_id), step)
    requests.post(post, json=[link(b) for b in attack], timeout=10)  # three at once: the fleet pauses
    wait_until(lambda: redis.hexists("goodreads:origin", "since"), 20, 0.05, "the attack to pause the fleet")

    waits: list[float] = []
    pending: dict[int, float] = {}
    started = time.monotonic()
    for tick in range(30):  # 30 s: a user's book every second, one more refused book every 2 s
        if tick % 2 == 0:
            book_id = 903 + tick // 2
            origin.behave(str(book_id), ATTACK_STEPS[tick // 2 % 3])
            attack.append(book_id)
            requests.post(post, json=[link(book_id)], timeout=10)
        requests.post(post, json=[link(1000 + tick)], timeout=10)
        pending[1000 + tick] = time.monotonic()
        while time.monotonic() < started + tick + 1:
            for book_id, sent in list(pending.items()):
                if stored(service, book_id):
                    waits.append(time.monotonic() - sent)
                    del pending[book_id]
                elif time.monotonic() - sent > BOUND:
                    raise AssertionError(f"book {book_id} not stored within {BOUND} s of its POST")
            time.sleep(0.1)
    for book_id, sent in pending.items():
        wait_until(lambda book_id=book_id: stored(service, book_id), max(0.1, sent + BOUND - time.monotonic()))
        waits.append(time.monotonic() - sent)
    assert len(waits) == 30 and max(waits) < BOUND
    print(f"users' books stored in {sorted(waits)[15]:.2f} s (median), {max(waits):.2f} s at most")

    def settled():
        answers = [requests.get(f"{service.url}/getBookInfo", params={"url": link(b)}, timeout=10) for b in attack]
        statuses = [a.json()["status"] for a in answers]
        return statuses if all(s == "blocked" for s in statuses) else None

    # Each refused book ends on its own: a first odd answer, at most one that paused the fleet
    # (unspent), then its first try and RETRY_MAX=2 retries, a second or two apart.
    wait_until(settled, 30, 0.5, "every refused book to end blocked")
    assert redis.hget("goodreads:origin", "state") == b"ok"
    assert all(len(origin.fetches(str(b))) <= 5 for b in attack)  # no book's trouble is tried forever
