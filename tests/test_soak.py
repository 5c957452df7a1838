"""A bounded soak on loopback: 8 clients post batches and read books for 25 s while 2 workers
drain the queue. Zero errors, zero lost books, flat memory in web and worker processes."""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests

from tests.processes import tree_rss_kb, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.serial]
SECONDS = 25
CLIENTS = 8
BOOKS = 1200


def test_soak(make_service, origin):
    service = make_service(workers=2, POST_BUDGET="0")  # the soak's clients share one address
    processes = {"web": service.web.pid, "worker 1": service.workers[0].pid, "worker 2": service.workers[1].pid}
    posted: set[str] = set()
    errors: list[str] = []
    counts = {"posts": 0, "gets": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + SECONDS

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                batch = [str(rng.randrange(10_000, 10_000 + BOOKS)) for _ in range(20)]
                try:
                    response = session.post(
                        f"{service.url}/parseGoodreadsLinks",
                        timeout=10,
                        json=[f"https://www.goodreads.com/book/show/{b}" for b in batch],
                    )
                    if response.status_code != 202:
                        errors.append(f"POST {response.status_code}")
                    with lock:
                        posted.update(batch)
                        counts["posts"] += 1
                    for book_id in rng.sample(batch, 5):
                        answer = session.get(
                            f"{service.url}/getBookInfo",
                            timeout=10,
                            params={"url": f"goodreads.com/book/show/{book_id}"},
                        )
                        if answer.status_code not in (200, 202):
                            errors.append(f"GET {answer.status_code} {answer.text[:100]}")
                        with lock:
                            counts["gets"] += 1
                except requests.RequestException as error:
                    errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(10)  # warmed up
    memory_start = {name: tree_rss_kb(pid) for name, pid in processes.items()}
    for thread in threads:
        thread.join()
    memory_end = {name: tree_rss_kb(pid) for name, pid in processes.items()}

    def all_stored() -> bool:
        return all(
            requests.get(
                f"{service.url}/getBookInfo", timeout=10, params={"url": f"goodreads.com/book/show/{b}"}
            ).status_code
            == 200
            for b in posted
        )

    wait_until(all_stored, 180, 2, "every posted book to be stored")
    fetched = [a.book_id for a in origin.fetches()]
    print(
        f"\n{counts['posts']} POSTs, {counts['gets']} GETs, {len(posted)} books, {len(fetched)} fetches, "
        f"{len(errors)} errors"
    )
    long_lived = {name: long_lived_mb(memory_start[name], memory_end[name]) for name in processes}
    for name, (start, end) in long_lived.items():
        print(f"{name}: RSS {start:.1f} MB after 10 s, {end:.1f} MB after {SECONDS} s")
    assert errors == []
    assert sorted(fetched) == sorted(posted)  # every book fetched once: none lost, none twice
    for name, (start, end) in long_lived.items():
        assert end <= start * 1.2 + 5, (name, memory_start[name], memory_end[name])


def long_lived_mb(start: dict[int, int], end: dict[int, int]) -> tuple[float, float]:
    """The memory, at both samples, of the processes alive at both: a worker and its scheduler,
    gunicorn's master and workers. A work horse lives for one job, so whether one happens to be
    running when a sample is taken says nothing about a leak."""
    both = start.keys() & end.keys()
    return sum(start[pid] for pid in both) / 1024, sum(end[pid] for pid in both) / 1024
