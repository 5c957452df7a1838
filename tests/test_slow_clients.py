"""Slow clients do not take the API down: lookups are answered while a hundred sockets
trickle their headers or their POST bodies a byte at a time (the Procfile's web command,
one gunicorn worker, the hardest case)."""

from __future__ import annotations

import pytest
import requests

from tests.slow_clients import SlowClients, percentile, timed_gets

pytestmark = pytest.mark.e2e
LOOKUP = {"url": "goodreads.com/book/show/1"}


@pytest.mark.parametrize(("headers", "bodies"), [(100, 0), (0, 100), (50, 50)])
def test_lookups_are_answered_during_a_slow_client_storm(make_service, headers, bodies):
    service = make_service(workers=0, WEB_CONCURRENCY="1")
    with SlowClients(service.port, headers=headers, bodies=bodies, interval=0.5):
        results = timed_gets(f"{service.url}/getBookInfo", 4, LOOKUP)
        posted = requests.post(f"{service.url}/parseGoodreadsLinks", json=[LOOKUP["url"]], timeout=10)
    statuses = {status for status, _ in results}
    p99 = percentile([seconds for _, seconds in results], 0.99)
    assert statuses == {404} and len(results) >= 20, (statuses, len(results))
    assert p99 < 1.0, f"p99 {p99:.3f} s over {len(results)} lookups"
    assert posted.status_code == 202
