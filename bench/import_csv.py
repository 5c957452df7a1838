"""Importing a Goodreads library export: one POST of a 10,000-row CSV, against a naive per-row loop.

    pipenv run python bench/import_csv.py [--rows 10000] [--rounds 3]

Builds an export as Goodreads writes it (a BOM, CRLF, the 24 columns, quoted titles with
commas, ISBNs as ="..." formulas, a review over several lines on every tenth row), starts its
own redis-server and the Procfile's web command (gunicorn), POSTs the file to
/parseGoodreadsLinks as text/csv (no worker runs, so every job stays queued) and times the
whole request. In the same run and on the same Redis: the same books as a JSON array of
links (the path the export adds to), and the naive baseline, the file read with
``csv.DictReader`` and, per row, ``Queue.enqueue_call(..., job_id="book-<id>")`` and an
``HSET`` of its title, author and ISBN-13, as the original tutorial would have done it.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import time
from collections.abc import Callable

import requests
from redis import Redis
from rq import Queue

from bench.lookup import cpu_seconds, gunicorn_workers
from tests.processes import tree_rss_mb, web_alone
from tests.test_imports import HEADER


def export_csv(first_id: int, rows: int) -> bytes:
    """A library export of ``rows`` distinct books, ids from ``first_id``."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(HEADER.split(","))
    for n in range(rows):
        isbn = f"{n:09d}"
        review = f'Row {n}, read twice.\r\nThe second time, slower.\r\n"Worth it."' if n % 10 == 0 else ""
        writer.writerow(
            [
                first_id + n,
                f"A Title, Part {n} (The Series, #{n % 7 + 1})",
                f"Author {n % 500}",
                f"{n % 500}, Author",
                "",
                f'="{isbn}X"',
                f'="978{isbn}1"',
                n % 6,
                "4.01",
                "Some Press, Inc.",
                "Paperback",
                200 + n % 400,
                2001 + n % 20,
                1990 + n % 30,
                "2026/03/02" if n % 3 else "",
                "2026/01/15",
                "to-read" if n % 3 == 0 else "",
                "to-read (#1)" if n % 3 == 0 else "",
                "to-read" if n % 3 == 0 else "read",
                review,
                "",
                "",
                1,
                0,
            ]
        )
    return b"\xef\xbb\xbf" + text.getvalue().encode()


def naive_import(redis: Redis, export: bytes) -> None:
    """Per row: one enqueue_call and one HSET of the row's hints."""
    queue = Queue("bookInfoParser", connection=redis)
    for row in csv.DictReader(io.StringIO(export.decode("utf-8-sig"), newline="")):
        book_id = row["Book Id"]
        queue.enqueue_call("worker.tasks.parse_book", args=(book_id,), job_id=f"book-{book_id}")
        isbn13 = row["ISBN13"].removeprefix('="').removesuffix('"')
        redis.hset(
            f"goodreads:hints:{book_id}", mapping={"title": row["Title"], "author": row["Author"], "isbn13": isbn13}
        )


def ways(post: str, redis: Redis, export: bytes, links: list[str]) -> dict[str, tuple[Callable[[], object], bool]]:
    """The three ways to queue the export's books, each with whether it runs in this process."""
    return {
        "csv": (lambda: requests.post(post, data=export, headers={"Content-Type": "text/csv"}, timeout=120), False),
        "json": (lambda: requests.post(post, json=links, timeout=120), False),
        "naive": (lambda: naive_import(redis, export), True),
    }


def timed(action: Callable[[], object], pids: list[int], here: bool) -> tuple[float, float]:
    """Wall seconds of ``action``, and the CPU seconds the processes ``pids`` (and, when ``here``,
    this one) spent on it: the CPU time, unlike the wall time, hardly moves with the machine's load."""
    before, own = cpu_seconds(pids), time.process_time()
    started = time.perf_counter()
    action()
    wall = time.perf_counter() - started
    after = cpu_seconds(pids)
    cpu = sum(after[pid] - before[pid] for pid in pids) + (time.process_time() - own if here else 0.0)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with web_alone() as (service, redis):
        post = f"{service.url}/parseGoodreadsLinks"
        pids = [*gunicorn_workers(service.web.pid), int(redis.info("server")["process_id"])]
        figures: dict[str, list[tuple[float, float]]] = {"csv": [], "json": [], "naive": []}
        for round_number in range(args.rounds):
            first = 1_000_000 * (round_number + 1)
            export = export_csv(first, args.rows)
            links = [f"https://www.goodreads.com/book/show/{first + n}" for n in range(args.rows)]
            for name, (action, here) in ways(post, redis, export, links).items():
                redis.flushall()
                figures[name].append(timed(action, pids, here))
                assert Queue("bookInfoParser", connection=redis).count == args.rows, name
                assert redis.hget(f"goodreads:hints:{first}", "title") or name == "json", name

        (csv_wall, csv_cpu), (json_wall, json_cpu), (naive_wall, naive_cpu) = (
            (statistics.median(wall for wall, _ in runs), statistics.median(cpu for _, cpu in runs))
            for runs in figures.values()
        )
        print(f"rows: {args.rows}, export: {len(export) / 1e6:.2f} MB, rounds: {args.rounds} (medians)")
        print(
            "                                            wall      CPU (gunicorn worker + redis-server [+ this loop])"
        )
        print(f"project POST of the export (text/csv):    {csv_wall:.3f} s   {csv_cpu:.3f} s")
        print(f"project POST of the same links (JSON):    {json_wall:.3f} s   {json_cpu:.3f} s")
        print(f"naive DictReader + enqueue_call + HSET:   {naive_wall:.3f} s   {naive_cpu:.3f} s")
        print(
            f"ratio: {naive_wall / csv_wall:.1f}x faster than the naive loop ({naive_cpu / csv_cpu:.1f}x less CPU); "
            f"{csv_wall / json_wall:.2f}x the JSON POST's time ({csv_cpu / json_cpu:.2f}x its CPU)"
        )
        print(f"peak RSS of gunicorn (master and worker): {tree_rss_mb(service.web.pid, 'VmHWM'):.0f} MB")


if __name__ == "__main__":
    main()
