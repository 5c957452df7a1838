"""Logs and metrics: one JSON line per event from web and worker; /metrics in Prometheus format."""

from __future__ import annotations

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import wait_until

pytestmark = pytest.mark.e2e


def samples(service) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{service.url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_and_json_logs(make_service, origin):
    service = make_service(RETRY_MAX="0", WEB_CONCURRENCY="3")
    origin.behave("902", "404")
    origin.behave("903", "signin")
    requests.post(
        f"{service.url}/parseGoodreadsLinks", timeout=10, json=[f"goodreads.com/book/show/{n}" for n in (901, 902, 903)]
    )
    wait_until(
        lambda: all(
            requests.get(
                f"{service.url}/getBookInfo", params={"url": f"goodreads.com/book/show/{n}"}, timeout=10
            ).status_code
            != 202
            for n in (901, 902, 903)
        ),
        30,
        0.2,
        "books",
    )

    values = wait_until(
        lambda: (v := samples(service)) and v[("goodreads_fetch_seconds_count", ())] == 3 and v,
        10,
        0.2,
        "three attempts counted",
    )
    assert values[("goodreads_attempts_total", (("outcome", "stored"),))] == 1
    assert values[("goodreads_attempts_total", (("outcome", "not_found"),))] == 1
    assert values[("goodreads_attempts_total", (("outcome", "blocked"),))] == 1
    assert values[("goodreads_records_stored_total", ())] == 1
    assert values[("goodreads_origin_responses_total", (("status", "200"),))] == 2
    assert values[("goodreads_origin_responses_total", (("status", "404"),))] == 1
    assert values[("goodreads_queue_depth", ())] == 0
    assert values[("goodreads_jobs", (("state", "failed"),))] == 1
    assert values[("goodreads_fetch_seconds_bucket", (("le", "+Inf"),))] == 3
    # Whichever of the three gunicorn workers answers a scrape reports the same totals.
    assert all(samples(service) == values for _ in range(6))

    service.stop()  # flush and close the logs
    events = {}
    for name in ("web", "worker-0"):
        lines = [line for line in (service.log_dir / f"{name}.log").read_text().splitlines() if line.strip()]
        assert lines, name
        events[name] = [json.loads(line) for line in lines]  # every line is one JSON event
    requests_logged = [e for e in events["web"] if e["message"] == "request"]
    assert {"method", "path", "status", "duration_ms"} <= set(requests_logged[0])
    attempts = {e["book_id"]: e for e in events["worker-0"] if e["message"] == "book attempt"}
    assert attempts["901"]["outcome"] == "stored" and attempts["901"]["origin_status"] == 200
    assert attempts["902"]["outcome"] == "not_found" and attempts["902"]["origin_status"] == 404
    assert attempts["903"]["outcome"] == "blocked" and attempts["903"]["reason"]
    assert {"job_id", "attempt", "duration_ms", "fetch_seconds"} <= set(attempts["901"])
