"""Lookups during a slow-client storm: GET /getBookInfo for 1,000 stored books while 0, 50
and 100 sockets trickle their headers or POST bodies a byte every 2 s (half of each), beside
the bare Flask route of bench/reference_app.py under the same gunicorn command and storm.

    pipenv run python bench/slow_clients.py [--seconds 10] [--warmup 5] [--connections 8] [--workers 4]

Needs wrk (apt-get install wrk). Starts its own redis-server; everything on loopback. Each
app is started afresh for each storm and first warmed up by an uncounted run of lookups, so
that the service answers from full record caches, as a running one does.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from redis import Redis

from bench.lookup import BOOKS, run_wrk_latencies, store_books, wrk_script
from tests.processes import RedisServer, Service
from tests.slow_clients import SlowClients

APPS = {"project": "app:create_app()", "reference": "bench.reference_app:create_app()"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5, help="length of the uncounted first run against each app")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (Compose runs 4)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt-get install wrk")
    scratch = tempfile.TemporaryDirectory()
    folder = Path(scratch.name)
    redis_server = RedisServer()
    redis_server.start()
    try:
        store_books(Redis(port=redis_server.port))
        script = wrk_script(folder)
        print(f"{BOOKS} stored books, {args.connections} wrk connections, {args.seconds} s per run, ")
        print(f"{args.workers} gunicorn workers; slow clients send a byte every 2 s (half headers, half bodies)")
        print(
            f"{'slow clients':>12} {'project req/s':>14} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'reference req/s':>16} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}"
        )
        for slow in (0, 50, 100):
            results = {}
            for name, app in APPS.items():
                service = Service(redis_server.url, "http://127.0.0.1:9", folder, WEB_CONCURRENCY=str(args.workers))
                service.start_web(app)
                try:
                    run_wrk_latencies(service.url, script, args.warmup, args.connections)
                    storm = SlowClients(
                        service.port, slow // 2, slow - slow // 2, interval=2.0, sources=("127.0.0.2",)
                    )  # from another address than wrk's: each address holds MAX_CLIENT_CONNECTIONS
                    with storm:
                        rps, p50, p99, errors = run_wrk_latencies(service.url, script, args.seconds, args.connections)
                    if errors:
                        sys.exit(f"{errors} non-2xx answers from {app}")
                    results[name] = (rps, p50, p99)
                finally:
                    service.stop()
            (ours, our_p50, our_p99), (reference, ref_p50, ref_p99) = results["project"], results["reference"]
            print(
                f"{slow:>12} {ours:>14,.0f} {our_p50:>7.2f} {our_p99:>7.2f} "
                f"{reference:>16,.0f} {ref_p50:>7.2f} {ref_p99:>7.2f} {ours / reference:>5.0%}"
            )
    finally:
        redis_server.cleanup()
        scratch.cleanup()


if __name__ == "__main__":
    main()
