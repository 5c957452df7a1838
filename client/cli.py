"""Command-line client: send links from a file, follow them to the end, take the records away.

    python -m client submit links.txt --wait --out books.csv [--server http://localhost:5000]
    cat links.txt | python -m client submit - --wait --out books.jsonl

One link per line; blank lines and lines starting with # are skipped. Links are sent in
batches within the server's limit; with --wait a progress bar shows each status as the
workers go, and at the end the records are written (CSV or JSON Lines, by the file's
extension) and what did not work out is summed up with the reasons.
Exit status: 0 when every link ended stored, 1 when some did not, 2 on a usage or server error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import requests
from tqdm import tqdm

from books.status import FINAL_FAILURES, IN_PROGRESS, BookStatus, Outcome

SETTLED_BADLY = FINAL_FAILURES | {BookStatus.UNKNOWN, Outcome.REJECTED}


class ClientError(Exception):
    """The server could not be reached or refused the request as a whole."""


def read_links(stream: TextIO) -> list[str]:
    """Links from text: one per line, blank lines and # comments skipped."""
    return [line.strip() for line in stream if line.strip() and not line.lstrip().startswith("#")]


def submit(
    session: requests.Session, server: str, links: list[str], batch_size: int, refresh: bool
) -> tuple[list[str], list[dict]]:
    """POST the links in batches; return the batch ids and the links refused outright."""
    batch_ids, refused = [], []
    for start in range(0, len(links), batch_size):
        chunk = links[start : start + batch_size]
        response = _call(
            session.post, f"{server}/parseGoodreadsLinks", json=chunk, params={"refresh": "true"} if refresh else None
        )
        body = response.json()
        if response.status_code == 202:
            batch_ids.append(body["batch_id"])
        elif response.status_code == 400 and "results" in body:  # no acceptable link in this chunk
            refused += body["results"]
        else:
            raise ClientError(f"the server refused the links: {body.get('message', response.status_code)}")
    return batch_ids, refused


def follow(
    session: requests.Session, server: str, batch_ids: list[str], interval: float, timeout: float | None, out: TextIO
) -> list[dict]:
    """Poll the batches until every book has settled, with a progress bar; return their last state."""
    deadline = time.monotonic() + timeout if timeout else None
    with tqdm(total=0, unit="book", file=out, dynamic_ncols=True) as bar:
        while True:
            batches = [_call(session.get, f"{server}/batches/{batch_id}").json() for batch_id in batch_ids]
            counts = _total_counts(batches)
            books = sum(count for status, count in counts.items() if status != Outcome.REJECTED)
            bar.total = books
            bar.n = books - sum(counts[status] for status in IN_PROGRESS)
            bar.set_postfix({status: count for status, count in counts.items() if count}, refresh=False)
            bar.refresh()
            if all(batch["finished"] for batch in batches):
                return batches
            if deadline and time.monotonic() > deadline:
                raise ClientError("gave up waiting (--timeout); the books are still being worked on")
            time.sleep(interval)


def save(session: requests.Session, server: str, batch_ids: list[str], path: Path) -> None:
    """Stream the batches' stored records into ``path``: CSV for .csv (one header row), else JSON Lines."""
    export_format = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    with path.open("wb") as target:
        for number, batch_id in enumerate(batch_ids):
            response = _call(
                session.get, f"{server}/batches/{batch_id}/books", params={"format": export_format}, stream=True
            )
            skip_header = export_format == "csv" and number > 0
            for chunk in response.iter_content(64 * 1024):
                if skip_header:
                    end = chunk.find(b"\n")
                    if end == -1:
                        continue
                    chunk, skip_header = chunk[end + 1 :], False
                target.write(chunk)


def summary(batches: list[dict], refused: list[dict]) -> tuple[str, bool]:
    """A report of the outcome, and whether every link ended stored."""
    counts = _total_counts(batches)
    counts[Outcome.REJECTED] += len(refused)
    problems: Counter[tuple[str, str]] = Counter()
    for link in [entry for batch in batches for entry in batch["links"]] + refused:
        status = link.get("status", link.get("outcome"))
        if status in SETTLED_BADLY:
            problems[(status, link.get("reason") or "")] += 1
    lines = ["Done: " + ", ".join(f"{count} {status}" for status, count in counts.items() if count)]
    for (status, reason), count in problems.most_common():
        lines.append(f"  {count:>5} {status}: {reason}")
    return "\n".join(lines), not problems


def _total_counts(batches: list[dict]) -> Counter:
    counts: Counter = Counter()
    for batch in batches:
        counts.update(batch["counts"])
    return counts


def _call(method: Callable[..., requests.Response], url: str, **kwargs: Any) -> requests.Response:
    try:
        response = method(url, timeout=60, **kwargs)
    except requests.RequestException as error:
        raise ClientError(f"cannot reach the server at {url}: {error}") from None
    if response.status_code >= 500:
        raise ClientError(f"the server answered {response.status_code}: {response.text[:200]}")
    return response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("submit", help="send links and, with --wait, follow them and save the records")
    send.add_argument("links", help="a file of links, one per line, or - for standard input")
    send.add_argument("--server", default="http://localhost:5000", help="the service's base URL")
    send.add_argument("--wait", action="store_true", help="follow the books until every one has settled")
    send.add_argument("--out", type=Path, help="with --wait: write the records here (.csv or .jsonl)")
    send.add_argument("--refresh", action="store_true", help="fetch books again even when a fresh record exists")
    send.add_argument("--batch-size", type=int, default=1000, help="links per request (default 1000)")
    send.add_argument("--interval", type=float, default=2.0, help="seconds between progress polls")
    send.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    args = parser.parse_args(argv)
    if args.out and not args.wait:
        parser.error("--out needs --wait")

    try:
        if args.links == "-":
            links = read_links(sys.stdin)
        else:
            with open(args.links, encoding="utf-8") as stream:
                links = read_links(stream)
    except OSError as error:
        parser.error(f"cannot read {args.links}: {error.strerror}")
    if not links:
        parser.error("no links to send")

    server = args.server.rstrip("/")
    with requests.Session() as session:
        try:
            batch_ids, refused = submit(session, server, links, max(1, args.batch_size), args.refresh)
            print(f"Sent {len(links)} links in {len(batch_ids)} batch(es): {' '.join(batch_ids)}", file=sys.stderr)
            if not args.wait:
                return 0
            batches = follow(session, server, batch_ids, args.interval, args.timeout, sys.stderr) if batch_ids else []
            if args.out:
                save(session, server, batch_ids, args.out)
                print(f"Wrote {_total_counts(batches)[BookStatus.STORED]} records to {args.out}", file=sys.stderr)
        except ClientError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    report, all_stored = summary(batches, refused)
    print(report)
    return 0 if all_stored else 1
