"""A bounded soak on loopback: 8 clients post batches and read books for 60 s while 2 workers
drain the queue. Zero errors, zero lost books, flat memory in web and worker processes."""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests

from tests.processes import tree_rss_mb, wait_until

pytestmark = pytest.mark.e2e
SECONDS = 60
CLIENTS = 8
BOOKS = 1200


def test_soak(make_service, origin):
    service = make_service(workers=2)
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
                    response = session.post(f"{service.url}/parseGoodreadsLinks", timeout=10,
                                            json=[f"https://www.goodreads.com/book/show/{b}" for b in batch])
                    if response.status_code != 202:
                        errors.append(f"POST {response.status_code}")
                    with lock:
                        posted.update(batch)
                        counts["posts"] += 1
                    for book_id in rng.sample(batch, 5):
                        answer = session.get(f"{service.url}/getBookInfo", timeout=10,
                                             params={"url": f"goodreads.com/book/show/{book_id}"})
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
    memory_start = {name: tree_rss_mb(pid) for name, pid in processes.items()}
    for thread in threads:
        thread.join()
    memory_end = {name: tree_rss_mb(pid) for name, pid in processes.items()}

    def all_stored() -> bool:
        return all(requests.get(f"{service.url}/getBookInfo", timeout=10,
                                params={"url": f"goodreads.com/book/show/{b}"}).status_code == 200 for b in posted)

    wait_until(all_stored, 180, 2, "every posted book to be stored")
    fetched = [a.book_id for a in origin.fetches()]
    print(f"\n{counts['posts']} POSTs, {counts['gets']} GETs, {len(posted)} books, {len(fetched)} fetches, "
          f"{len(errors)} errors")
    for name in processes:
        print(f"{name}: RSS {memory_start[name]:.1f} MB after 10 s, {memory_end[name]:.1f} MB after {SECONDS} s")
    assert errors == []
    assert sorted(fetched) == sorted(posted)  # every book fetched once: none lost, none twice
    for name in processes:
        assert memory_end[name] <= memory_start[name] * 1.2 + 5, (name, memory_start, memory_end)
