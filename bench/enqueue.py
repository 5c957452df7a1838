"""Batch enqueue: one POST of 10,000 distinct links, against a naive loop of enqueue_call.

    pipenv run python bench/enqueue.py [--links 10000] [--rounds 3]

Starts its own redis-server and the Procfile's web command (gunicorn), POSTs the links
to /parseGoodreadsLinks (no worker runs, so every job stays queued), and times the
whole request. Two baselines, in the same run and on the same Redis: the naive one,
``Queue.enqueue_call(..., job_id="book-<id>")`` per link as the original tutorial did, and
RQ's own pipelined ``Queue.enqueue_many`` in chunks of 1,000 (which checks no duplicate).
Each round runs the three back to back, so besides the ratio of the medians it prints the
median of the rounds' own ratios, with their spread: the machine's speed drifts over longer
than a round, and that ratio cancels the drift out.
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests
from rq import Queue

from tests.processes import tree_rss_mb, web_alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with web_alone() as (service, redis):
        ours, naive, many = [], [], []
        for round_number in range(args.rounds):
            first = 1_000_000 * (round_number + 1)
            links = [f"https://www.goodreads.com/book/show/{first + n}-a-title" for n in range(args.links)]
            redis.flushall()
            started = time.perf_counter()
            response = requests.post(f"{service.url}/parseGoodreadsLinks", json=links, timeout=120)
            ours.append(time.perf_counter() - started)
            assert response.status_code == 202 and response.json()["counts"]["queued"] == args.links
            assert Queue("bookInfoParser", connection=redis).count == args.links

            redis.flushall()
            queue = Queue("bookInfoParser", connection=redis)
            started = time.perf_counter()
            for n in range(args.links):
                queue.enqueue_call("worker.tasks.parse_book", args=(str(first + n),), job_id=f"book-{first + n}")
            naive.append(time.perf_counter() - started)
            assert queue.count == args.links

            redis.flushall()
            started = time.perf_counter()
            for start in range(0, args.links, 1000):
                book_ids = [str(first + n) for n in range(start, min(start + 1000, args.links))]
                queue.enqueue_many(
                    [
                        Queue.prepare_data("worker.tasks.parse_book", args=(book_id,), job_id=f"book-{book_id}")
                        for book_id in book_ids
                    ]
                )
            many.append(time.perf_counter() - started)
            assert queue.count == args.links

        best, baseline, pipelined = statistics.median(ours), statistics.median(naive), statistics.median(many)
        rounds = sorted(slow / fast for slow, fast in zip(naive, ours, strict=True))
        print(f"links per request: {args.links}, rounds: {args.rounds} (medians)")
        print(
            f"project POST /parseGoodreadsLinks: {best:.3f} s  ({args.links / best:,.0f} links/s; "
            f"rounds {min(ours):.3f}–{max(ours):.3f} s)"
        )
        print(f"naive enqueue_call loop:            {baseline:.3f} s  ({args.links / baseline:,.0f} links/s)")
        print(f"RQ enqueue_many, 1,000 per call:    {pipelined:.3f} s  ({args.links / pipelined:,.0f} links/s)")
        print(
            f"ratio: {baseline / best:.1f}x faster than the naive loop, {pipelined / best:.1f}x faster than "
            "enqueue_many (which checks no duplicate)"
        )
        print(
            f"the rounds' own ratios to the naive loop: median {statistics.median(rounds):.1f}x "
            f"({rounds[0]:.1f}–{rounds[-1]:.1f}x)"
        )
        print(f"peak RSS of gunicorn (master and worker): {tree_rss_mb(service.web.pid, 'VmHWM'):.0f} MB")


if __name__ == "__main__":
    main()
