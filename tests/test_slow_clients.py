"""Slow clients do not take the API down: lookups are answered while a hundred sockets
trickle their headers or their POST bodies a byte at a time (the Procfile's web command,
one gunicorn worker, the hardest case)."""

from __future__ import annotations

import pytest
import requests

from tests.slow_clients import SlowClients, percentile, timed_gets

pytestmark = [pytest.mark.e2e, pytest.mark.serial]
LOOKUP = {"url": "goodreads.com/book/show/1"}


@pytest.mark.parametrize(("headers", "bodies"), [(100, 0), (0, 100), (50, 50)])
def test_lookups_are_answered_during_a_slow_client_storm(make_service, headers, bodies):
    service = make_service(workers=0, WEB_CONCURRENCY="1")
    # The storm from another address than the lookups' (each address holds MAX_CLIENT_CONNECTIONS).
    with SlowClients(service.port, headers=headers, bodies=bodies, interval=0.5, sources=("127.0.0.2",)):
        results = timed_gets(f"{service.url}/getBookInfo", 4, LOOKUP)
        posted = requests.post(f"{service.url}/parseGoodreadsLinks", json=[LOOKUP["url"]], timeout=10)
    statuses = {status for status, _ in results}
    p99 = percentile([seconds for _, seconds in results], 0.99)
    assert statuses == {404} and len(results) >= 20, (statuses, len(results))
    assert p99 < 1.0, f"p99 {p99:.3f} s over {len(results)} lookups"
    assert posted.status_code == 202


def test_the_record_cache_answers_under_the_gevent_worker(make_service, redis):
    """The record cache's listener (a thread, a greenlet once gevent has patched threading)
    goes live in gunicorn's worker: repeated lookups of a stored book stop reading Redis."""
    from books.store import BookStore
    from tests.origin import book_page
    from tests.processes import wait_until
    from worker.parser import parse_book_page

    service = make_service(workers=0, WEB_CONCURRENCY="1")
    BookStore(redis).save_record("42", parse_book_page(book_page("42"), "42"))
    url, params = f"{service.url}/getBookInfo", {"url": "goodreads.com/book/show/42"}

    def record_reads() -> int:
        return int(redis.info("commandstats").get("cmdstat_get", {}).get("calls", 0))

    def kept() -> bool:
        before = record_reads()
        answers = [requests.get(url, params=params, timeout=10).status_code for _ in range(5)]
        return answers == [200] * 5 and record_reads() == before

    wait_until(kept, 20, 0.2, "lookups answered from the record cache")
