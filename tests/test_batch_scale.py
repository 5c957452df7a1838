"""A batch of 20,000 links through gunicorn: its first page comes quickly, and its pages
hold every link exactly once, in the order sent."""

from __future__ import annotations

import time

import pytest
import requests

pytestmark = pytest.mark.e2e

LINKS = 20_000


def test_a_batch_of_20000_links_answers_its_first_page_quickly_and_pages_to_the_end(make_service):
    service = make_service(workers=0, MAX_LINKS_PER_REQUEST=str(LINKS))
    links = [f"https://www.goodreads.com/book/show/{500_000 + n}" for n in range(LINKS)]
    answer = requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=60)
    assert answer.status_code == 202, answer.text[:300]
    url = f"{service.url}/batches/{answer.json()['batch_id']}"

    started = time.monotonic()
    first = requests.get(url, timeout=30)
    took = time.monotonic() - started
    assert first.status_code == 200 and took < 5, took  # about 0.2 s on 2 cores; the bound is generous
    body = first.json()
    assert (len(body["links"]), body["next_cursor"], body["finished"]) == (1000, "1000", False)
    assert body["counts"]["queued"] == LINKS

    read, cursor, pages = list(body["links"]), body["next_cursor"], 1
    while cursor is not None:
        body = requests.get(url, params={"cursor": cursor}, timeout=30).json()
        read += body["links"]
        cursor, pages = body["next_cursor"], pages + 1
    assert pages == LINKS // 1000
    assert [link["link"] for link in read] == links
    assert {link["status"] for link in read} == {"queued"}
