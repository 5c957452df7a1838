"""One anonymous client must not stop the service for everyone: each attack run against the
real processes (gunicorn, rq workers, redis-server, the local origin), and its bound asserted."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.e2e
LINK = "https://www.goodreads.com/book/show/{}"


def post(url: str, *ids: int, **kwargs) -> requests.Response:
    return requests.post(f"{url}/parseGoodreadsLinks", json=[LINK.format(n) for n in ids], timeout=30, **kwargs)


def test_a_forged_x_forwarded_for_is_ignored_unless_a_trusted_proxy_sent_it(make_service):
    """gunicorn reachable directly, next to a proxy at 192.0.2.1: a client changing its
    X-Forwarded-For on every POST still spends one budget; the same headers from a trusted proxy
    name the client, and the dashboard refuses the outside client the proxy names."""
    direct = make_service(workers=0, POST_BUDGET="1", TRUSTED_PROXY_HOPS="1", TRUSTED_PROXY_ADDRESSES="192.0.2.1")
    forged = [post(direct.url, n, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in (1, 2)]
    assert forged == [202, 429]
    direct.stop()
    proxied = make_service(workers=0, POST_BUDGET="1", TRUSTED_PROXY_HOPS="1", TRUSTED_PROXY_ADDRESSES="127.0.0.0/8")
    named = [post(proxied.url, n, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in (3, 4)]
    assert named == [202, 202]
    dashboard = requests.get(f"{proxied.url}/rqstatus/", headers={"X-Forwarded-For": "203.0.113.5"}, timeout=10)
    assert dashboard.status_code == 403 and dashboard.json()["error"] == "dashboard_local_only"
