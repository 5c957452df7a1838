"""Command-line client: send links from a file, follow them to the end, take the records away.

    python -m client submit links.txt --wait --out books.csv [--server http://localhost:5000]
    cat links.txt | python -m client submit - --wait --out books.jsonl

One link per line; blank lines and lines starting with # are skipped. Links are sent in
batches within the server's limit; with --wait a progress bar shows each status as the
workers go, and at the end the records are written (CSV or JSON Lines, by the file's
extension) and what did not work out is summed up with the reasons.

Exit status:
  0  every link ended stored
  1  some links did not (the summary gives each reason)
  2  a usage error, or the server could not be reached or refused the request
  3  gave up waiting (--timeout): the records stored so far are written all the same,
     and the books left go on being worked on; send the same links again later
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import requests
from tqdm import tqdm

from books.status import FINAL_FAILURES, IN_PROGRESS, BookStatus, Outcome

SETTLED_BADLY = FINAL_FAILURES | {BookStatus.UNKNOWN, Outcome.REJECTED}
GAVE_UP = 3
# The progress bar shows the most common reason books are retrying, cut to this length
# (enough for "failed: Goodreads failed to answer (HTTP 503)").
REASON_LENGTH = 50


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
) -> tuple[list[dict], bool]:
    """Poll the batches' counts, with a progress bar, until every book has settled or ``timeout``
    seconds have passed; return their last state, every link's included, and whether every
    book settled."""
    deadline = None if timeout is None else time.monotonic() + timeout
    batches = _poll(session, server, {batch_id: None for batch_id in batch_ids})
    counts = _total_counts(list(batches.values()))
    # Made once the number of books is known: a bar without a total prints a stray "0book" line.
    books = sum(count for status, count in counts.items() if status != Outcome.REJECTED)
    with tqdm(total=books, unit="book", file=out, dynamic_ncols=True) as bar:
        while True:
            finished = all(batch["finished"] for batch in batches.values())
            if finished or (deadline is not None and time.monotonic() > deadline):
                batches = {batch_id: _read_batch(session, server, batch_id) for batch_id in batch_ids}
                _show(bar, list(batches.values()))
                return list(batches.values()), finished
            _show(bar, list(batches.values()))
            time.sleep(interval)
            batches = _poll(session, server, batches)


def _poll(session: requests.Session, server: str, last: Mapping[str, dict | None]) -> dict[str, dict]:
    """Each batch's counts (a finished batch's do not change: it is not asked again); every link
    of a batch with books retrying, for the reason the bar shows."""
    batches = {}
    for batch_id, known in last.items():
        if known is None or not known["finished"]:
            known = _call(session.get, f"{server}/batches/{batch_id}", params={"limit": 0}).json()
            if known["counts"][BookStatus.RETRYING]:
                known = _read_batch(session, server, batch_id)
        batches[batch_id] = known
    return batches


def _read_batch(session: requests.Session, server: str, batch_id: str) -> dict:
    """The batch with every link, read a page at a time."""
    batch = _call(session.get, f"{server}/batches/{batch_id}").json()
    links, cursor = batch["links"], batch.get("next_cursor")
    while cursor is not None:
        following = _call(session.get, f"{server}/batches/{batch_id}", params={"cursor": cursor}).json()
        links += following["links"]
        cursor = following["next_cursor"]
    return batch


def _show(bar: tqdm, batches: list[dict]) -> None:
    """The books settled, the count of each status and why books are retrying."""
    counts = _total_counts(batches)
    bar.n = sum(count for status, count in counts.items() if status not in IN_PROGRESS | {Outcome.REJECTED})
    postfix: dict[str, object] = {status: count for status, count in counts.items() if count}
    reason = retry_reason(batches)
    if reason:
        postfix[BookStatus.RETRYING] = f"{counts[BookStatus.RETRYING]} ({reason})"
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()


def retry_reason(batches: list[dict]) -> str | None:
    """The most common reason the retrying books' last attempt failed, shortened for the bar."""
    reasons = Counter(
        link["reason"]
        for batch in batches
        for link in batch["links"]
        if link.get("status") == BookStatus.RETRYING and link.get("reason")
    )
    if not reasons:
        return None
    reason = reasons.most_common(1)[0][0]
    return reason if len(reason) <= REASON_LENGTH else reason[: REASON_LENGTH - 1] + "…"


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


def summary(batches: list[dict], refused: list[dict], finished: bool = True) -> tuple[str, bool]:
    """A report of where the links stand (at the end, or when the client gave up waiting),
    and whether every link ended stored."""
    counts = _total_counts(batches)
    counts[Outcome.REJECTED] += len(refused)
    problems: Counter[tuple[str, str]] = Counter()
    for link in [entry for batch in batches for entry in batch["links"]] + refused:
        status = link.get("status", link.get("outcome"))
        if status in SETTLED_BADLY:
            problems[(status, link.get("reason") or "")] += 1
    heading = "Done" if finished else "Gave up waiting (--timeout)"
    lines = [f"{heading}: " + ", ".join(f"{count} {status}" for status, count in counts.items() if count)]
    for (status, reason), count in problems.most_common():
        lines.append(f"  {count:>5} {status}: {reason}")
    return "\n".join(lines), not problems


def _total_counts(batches: list[dict]) -> Counter:
    counts: Counter = Counter()
    for batch in batches:
        counts.update(batch["counts"])
    return counts


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _call(method: Callable[..., requests.Response], url: str, **kwargs: Any) -> requests.Response:
    try:
        response = method(url, timeout=60, **kwargs)
    except requests.RequestException as error:
        raise ClientError(f"cannot reach the server at {url}: {error}") from None
    if response.status_code >= 500:
        raise ClientError(f"the server answered {response.status_code}: {response.text[:200]}")
    return response


def parser() -> argparse.ArgumentParser:
    """The command line, with each option's default and the exit statuses in ``--help``."""
    exit_statuses = __doc__[__doc__.index("Exit status:") :]
    main_parser = argparse.ArgumentParser(
        prog="python -m client",
        description=__doc__.splitlines()[0],
        epilog=exit_statuses,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser(
        "submit",
        help="send links and, with --wait, follow them and save the records",
        epilog=exit_statuses,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument("links", help="a file of links, one per line, or - for standard input")
    send.add_argument("--server", default="http://localhost:5000", help="the service's base URL (default: %(default)s)")
    send.add_argument("--wait", action="store_true", help="follow the books until every one has settled")
    send.add_argument("--out", type=Path, help="with --wait: write the records here (.csv or .jsonl)")
    send.add_argument("--refresh", action="store_true", help="fetch books again even when a fresh record exists")
    send.add_argument("--batch-size", type=int, default=1000, help="links per request (default: %(default)s)")
    send.add_argument(
        "--interval", type=float, default=2.0, help="seconds between progress polls (default: %(default)s)"
    )
    send.add_argument(
        "--timeout",
        type=float,
        help="with --wait: give up waiting after this many seconds, write the records stored so far and exit "
        f"with status {GAVE_UP} (default: wait until every book has settled)",
    )
    return main_parser


def main(argv: list[str] | None = None) -> int:
    command_line = parser()
    args = command_line.parse_args(argv)
    if args.out and not args.wait:
        command_line.error("--out needs --wait")

    try:
        if args.links == "-":
            links = read_links(sys.stdin)
        else:
            with open(args.links, encoding="utf-8") as stream:
                links = read_links(stream)
    except OSError as error:
        command_line.error(f"cannot read {args.links}: {error.strerror}")
    if not links:
        command_line.error("no links to send")

    server = args.server.rstrip("/")
    with requests.Session() as session:
        try:
            batch_ids, refused = submit(session, server, links, max(1, args.batch_size), args.refresh)
            sent = f"Sent {_count(len(links), 'link', 'links')} in {_count(len(batch_ids), 'batch', 'batches')}"
            print(sent + (f": {' '.join(batch_ids)}" if batch_ids else ""), file=sys.stderr)
            if not args.wait:
                return 0
            batches, finished = (
                follow(session, server, batch_ids, args.interval, args.timeout, sys.stderr) if batch_ids else ([], True)
            )
            if args.out:
                save(session, server, batch_ids, args.out)
                stored = _total_counts(batches)[BookStatus.STORED]
                print(f"Wrote {_count(stored, 'record', 'records')} to {args.out}", file=sys.stderr)
        except ClientError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    report, all_stored = summary(batches, refused, finished)
    print(report)
    if not finished:
        print(
            "The books left go on being worked on: send the same links again later for their records "
            "(stored books are not fetched again).",
            file=sys.stderr,
        )
        return GAVE_UP
    return 0 if all_stored else 1
