"""A batch of 100,000 links through gunicorn and a real worker: every answer of
``GET /batches/<id>`` (its first page, and the counts alone as the client polls them) comes
in under a second, from the first, while a worker recounts the batch in the background."""

from __future__ import annotations

import statistics
import time
from datetime import datetime

import pytest
import requests

pytestmark = pytest.mark.e2e

LINKS = 100_000
# Polled like the client, at least this long and until a recount shows progress, at most that.
MIN_WATCH_SECONDS = 12
MAX_WATCH_SECONDS = 40
BOUND = 1.0  # seconds: the requirement; about 0.02 s is usual


def timed_get(session: requests.Session, url: str, **params: str) -> tuple[float, dict]:
    started = time.monotonic()
    answer = session.get(url, params=params, timeout=30)
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.text[:300]
    return took, answer.json()


def test_a_batch_of_100000_links_answers_every_get_in_under_a_second_while_a_worker_recounts(make_service):
    # The worker fetches the books from the POST on, and recounts the batch once its counts are stale.
    service = make_service(
        workers=1,
        MAX_LINKS_PER_REQUEST=str(LINKS),
        MAX_REQUEST_BYTES=str(32 * 1024 * 1024),
        CLIENT_QUEUED_BOOKS=str(LINKS),  # one client's books, more than its default share
    )
    links = [f"https://www.goodreads.com/book/show/{3_000_000 + n}" for n in range(LINKS)]
    session = requests.Session()
    started = time.monotonic()
    answer = session.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=180)
    post_took = time.monotonic() - started
    assert answer.status_code == 202, answer.text[:300]
    url = f"{service.url}/batches/{answer.json()['batch_id']}"

    timings: list[float] = []
    took, first = timed_get(session, url)
    timings.append(took)
    assert (len(first["links"]), first["finished"], first["counts"]["queued"]) == (1000, False, LINKS)
    took, counts_only = timed_get(session, url, limit="0")
    timings.append(took)
    assert counts_only["counts"] == first["counts"]  # the POST's counts, until a worker recounts

    answers: list[dict] = []
    watched_from = time.monotonic()
    while time.monotonic() - watched_from < MAX_WATCH_SECONDS and not (
        time.monotonic() - watched_from > MIN_WATCH_SECONDS and recounted_with_progress(answers, first)
    ):
        for params in ({}, {"limit": "0"}):
            took, body = timed_get(session, url, **params)
            timings.append(took)
            answers.append(body)
        time.sleep(0.5)

    print(
        f"POST of {LINKS} links: {post_took:.1f} s; {len(timings)} GETs in {time.monotonic() - watched_from:.0f} s: "
        f"median {statistics.median(timings):.3f} s, max {max(timings):.3f} s; "
        f"counts_at seen: {sorted({a['counts_at'] for a in answers})}; last counts {answers[-1]['counts']}"
    )
    assert max(timings) < BOUND, timings
    assert recounted_with_progress(answers, first), "no recount saw the worker's progress"
    last = answers[-1]
    assert sum(last["counts"].values()) == LINKS  # honest: every book once, whatever its status
    assert datetime.fromisoformat(last["counts_at"]) > datetime.fromisoformat(first["counts_at"])


def recounted_with_progress(answers: list[dict], first: dict) -> bool:
    """An answer counted after the POST's counts, with books stored since."""
    return any(a["counts_at"] > first["counts_at"] and a["counts"]["stored"] > 0 for a in answers)
