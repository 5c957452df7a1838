"""Command-line client: send links from a file, follow them to the end, take the records away.

    python -m client submit links.txt --wait --out books.csv [--server http://localhost:5000]
    cat links.txt | python -m client submit - --wait --out books.jsonl
    python -m client import goodreads_library_export.csv --wait --out books.csv

submit: one link per line; blank lines and lines starting with # are skipped. Links are sent
in batches within the server's limit. import: a Goodreads "Export Library" CSV, sent as it is
in one request (within the server's MAX_LINKS_PER_REQUEST rows and MAX_REQUEST_BYTES); the
server reads a book from each row and lists the rows it could not use with their lines. With
--wait a progress bar shows each status as the workers go, and at the end the records are
written (CSV or JSON Lines, by the file's extension) and what did not work out is summed up
with the reasons.

API token: a deployment with API_TOKENS set takes links only with one of its tokens. Give it
in the environment variable BOOK_INFO_API_TOKEN, or with --token (which other users of the
machine may see in the process list). It is sent as "Authorization: Bearer <token>" on every
request and never printed.

A busy server: on 429 (past this client's POST budget) or 503 (the queue full, the storage
unreachable) with a Retry-After header, a line says why and how long the client waits; then
it sends the same request again. Links the server accepted are never sent again. Without
--timeout it waits as often and as long as the server asks; with --timeout it does not begin
a wait that would end past it, and stops sending there (exit status 3).

Exit status:
  0  every link ended stored
  1  some links did not (the summary gives each reason)
  2  a usage error, or the server could not be reached or refused the request
  3  gave up waiting (--timeout), for the books to settle or for the server to take more
     links: the records stored so far are written all the same, and the books sent go on
     being worked on; send the same links again later
  4  the server wants an API token (--token or BOOK_INFO_API_TOKEN) or refused the one given
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

import requests
from tqdm import tqdm
from urllib3.exceptions import NameResolutionError

from client.statuses import FINAL_FAILURES, IN_PROGRESS, REJECTED, RETRYING, STORED, UNKNOWN

SETTLED_BADLY = FINAL_FAILURES | {UNKNOWN, REJECTED}
GAVE_UP = 3
UNAUTHORIZED = 4
TOKEN_VARIABLE = "BOOK_INFO_API_TOKEN"
# Answers that ask the client to come back after Retry-After: its POST budget is spent (429),
# or the service cannot take the request just now (503: queue full, storage unreachable).
WAIT_STATUSES = frozenset({429, 503})
NOT_SENT = "not_sent"
# The progress bar shows the most common reason books are retrying, cut to this length
# (enough for "failed: Goodreads failed to answer (HTTP 503)").
REASON_LENGTH = 50
# Seconds a request may take to be answered.
REQUEST_TIMEOUT = 60
# What --out writes, by the file's extension.
EXPORT_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}


class ClientError(Exception):
    """The server could not be reached or refused the request as a whole."""


class Unauthorized(ClientError):
    """The server wants an API token, or refused the one given."""


class OutOfTime(ClientError):
    """The server asked for a wait that would end past --timeout."""


class BearerToken(requests.auth.AuthBase):
    """The API token on every request. As the session's auth, it also keeps requests from
    putting a ~/.netrc password in its place, and requests drops it on a redirect to another
    host; its repr hides the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerToken(<hidden>)"


def retry_after(value: str | None, now: datetime) -> float | None:
    """The seconds a Retry-After header asks to wait (a number of seconds or an HTTP date,
    RFC 9110), at least 1 so that the client never asks again at once; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return max(1.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are in GMT
        when = when.replace(tzinfo=UTC)
    return max(1.0, (when - now).total_seconds())


def unreachable(server: str, error: requests.RequestException) -> str:
    """Why the server could not be reached, in one plain line: urllib3's own message runs to a
    paragraph of pool, object and retry names that say less than this."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(error, requests.exceptions.SSLError):
        return f"cannot reach the server at {server}: the TLS handshake failed (a certificate not trusted, or not TLS)"
    if isinstance(error, requests.Timeout):
        return f"the server at {server} did not answer within {REQUEST_TIMEOUT} s"
    if isinstance(reason, NameResolutionError):
        return f"cannot reach the server at {server}: its host name does not resolve (check --server)"
    if isinstance(error, requests.ConnectionError):
        return f"cannot reach the server at {server}: nothing answers there (is the service running, --server right?)"
    return f"cannot reach the server at {server}: {type(error).__name__}"


def valid_token(token: str) -> bool:
    """A token an HTTP header can carry as given: printable ASCII, no spaces (as API_TOKENS's)."""
    return bool(token) and token.isascii() and token.isprintable() and " " not in token


@dataclass
class Api:
    """The service as the client calls it: every request carries the session's token and, on a
    429 or 503 with Retry-After, is sent again after the wait, unless that would end past the
    deadline (--timeout, counted from the start of the run)."""

    session: requests.Session
    server: str
    deadline: float | None = None
    token_source: str | None = None
    sleep: Callable[[float], None] = time.sleep

    def call(self, method: str, path: str, again: str = "asking again", **kwargs: Any) -> requests.Response:
        """The server's answer; ``again`` names, in the line shown before a wait, what is sent again."""
        url = f"{self.server}{path}"
        while True:
            try:
                response = self.session.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
            except requests.RequestException as error:
                raise ClientError(unreachable(self.server, error)) from None
            if response.status_code == 401:
                raise Unauthorized(self._unauthorized())
            if response.status_code not in WAIT_STATUSES:
                break
            wait = retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
            why = f"the server answered {response.status_code} ({_message(response)})"
            response.close()
            if wait is None:
                raise ClientError(f"{why} without saying when to come back (Retry-After)")
            if self.deadline is not None and time.monotonic() + wait > self.deadline:
                raise OutOfTime(f"{why} and asked to wait {wait:g} s, past --timeout")
            tqdm.write(f"Waiting {wait:g} s, then {again}: {why}", file=sys.stderr)
            self.sleep(wait)
        if response.status_code >= 500:
            raise ClientError(f"the server answered {response.status_code}: {response.text[:200]}")
        return response

    def _unauthorized(self) -> str:
        if self.token_source is None:
            return f"the server takes links only with an API token: set {TOKEN_VARIABLE} or pass --token"
        return f"the server refused the API token given in {self.token_source}"


def _message(response: requests.Response) -> str:
    """The reason an error answer gives (the service's JSON "message"), else the start of its body."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


@dataclass
class Sent:
    """What became of the links: the batches made, the links refused outright, and the links
    not sent at all because the server asked to wait past --timeout (and its words)."""

    batch_ids: list[str] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    links: int = 0  # links (or rows) the server took, as it counted them
    unsent: int = 0
    stopped: str | None = None


def read_links(stream: TextIO) -> list[str]:
    """Links from text: one per line, blank lines and # comments skipped."""
    return [line.strip() for line in stream if line.strip() and not line.lstrip().startswith("#")]


def submit(api: Api, links: list[str], batch_size: int, refresh: bool) -> Sent:
    """POST the links in batches, a batch again after each wait the server asks for; a batch
    accepted is never sent again. Stops at a wait that would end past the deadline."""
    sent = Sent()
    for start in range(0, len(links), batch_size):
        chunk = links[start : start + batch_size]
        try:
            _post(api, sent, f"sending links {start + 1}-{start + len(chunk)} again", refresh, json=chunk)
        except OutOfTime as error:
            sent.unsent, sent.stopped = len(links) - start, str(error)
            return sent
    return sent


def send_export(api: Api, export: bytes, refresh: bool) -> Sent:
    """POST a Goodreads library export as it is (``text/csv``), again after each wait the server
    asks for; the server reads its rows. A wait past the deadline raises ``OutOfTime``: nothing
    was sent."""
    sent = Sent()
    _post(api, sent, "sending the export again", refresh, data=export, headers={"Content-Type": "text/csv"})
    return sent


def _post(api: Api, sent: Sent, again: str, refresh: bool, **body: Any) -> None:
    """One POST of links: its batch kept, or, when none was acceptable, each link refused."""
    response = api.call(
        "POST", "/parseGoodreadsLinks", again=again, params={"refresh": "true"} if refresh else None, **body
    )
    answer = response.json() if response.status_code in (202, 400) else {}
    if response.status_code == 202:
        sent.batch_ids.append(answer["batch_id"])
    elif "results" in answer:  # a 400: no acceptable link in this request
        sent.refused += answer["results"]
    else:
        raise ClientError(f"the server refused the links: {_message(response)}")
    sent.links += answer["counts"]["links"]


def follow(api: Api, batch_ids: list[str], interval: float, out: TextIO) -> tuple[list[dict], bool]:
    """Poll the batches' counts, with a progress bar, until every book has settled or the
    deadline has passed; return their last state, every link's included, and whether every
    book settled."""
    batches = _poll(api, {batch_id: None for batch_id in batch_ids})
    counts = _total_counts(list(batches.values()))
    # Made once the number of books is known: a bar without a total prints a stray "0book" line.
    books = sum(count for status, count in counts.items() if status != REJECTED)
    with tqdm(total=books, unit="book", file=out, dynamic_ncols=True) as bar:
        while True:
            finished = all(batch["finished"] for batch in batches.values())
            if finished or (api.deadline is not None and time.monotonic() > api.deadline):
                batches = {batch_id: _read_batch(api, batch_id) for batch_id in batch_ids}
                _show(bar, list(batches.values()))
                return list(batches.values()), finished
            _show(bar, list(batches.values()))
            time.sleep(interval)
            batches = _poll(api, batches)


def _poll(api: Api, last: Mapping[str, dict | None]) -> dict[str, dict]:
    """Each batch's counts (a finished batch's do not change: it is not asked again); every link
    of a batch with books retrying, for the reason the bar shows."""
    batches = {}
    for batch_id, known in last.items():
        if known is None or not known["finished"]:
            known = api.call("GET", f"/batches/{batch_id}", params={"limit": 0}).json()
            if known["counts"][RETRYING]:
                known = _read_batch(api, batch_id)
        batches[batch_id] = known
    return batches


def _read_batch(api: Api, batch_id: str) -> dict:
    """The batch with every link, read a page at a time."""
    batch = api.call("GET", f"/batches/{batch_id}").json()
    links, cursor = batch["links"], batch.get("next_cursor")
    while cursor is not None:
        following = api.call("GET", f"/batches/{batch_id}", params={"cursor": cursor}).json()
        links += following["links"]
        cursor = following["next_cursor"]
    return batch


def _show(bar: tqdm, batches: list[dict]) -> None:
    """The books settled, the count of each status and why books are retrying."""
    counts = _total_counts(batches)
    bar.n = sum(count for status, count in counts.items() if status not in IN_PROGRESS | {REJECTED})
    postfix: dict[str, object] = {status: count for status, count in counts.items() if count}
    reason = retry_reason(batches)
    if reason:
        postfix[RETRYING] = f"{counts[RETRYING]} ({reason})"
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()


def retry_reason(batches: list[dict]) -> str | None:
    """The most common reason the retrying books' last attempt failed, shortened for the bar."""
    reasons = Counter(
        link["reason"]
        for batch in batches
        for link in batch["links"]
        if link.get("status") == RETRYING and link.get("reason")
    )
    if not reasons:
        return None
    reason = reasons.most_common(1)[0][0]
    return reason if len(reason) <= REASON_LENGTH else reason[: REASON_LENGTH - 1] + "…"


def save(api: Api, batch_ids: list[str], path: Path) -> None:
    """Stream the batches' stored records into ``path``: CSV for .csv (one header row), JSON Lines for .jsonl."""
    export_format = EXPORT_FORMATS[path.suffix.lower()]
    with path.open("wb") as target:
        for number, batch_id in enumerate(batch_ids):
            response = api.call("GET", f"/batches/{batch_id}/books", params={"format": export_format}, stream=True)
            skip_header = export_format == "csv" and number > 0
            for chunk in response.iter_content(64 * 1024):
                if skip_header:
                    end = chunk.find(b"\n")
                    if end == -1:
                        continue
                    chunk, skip_header = chunk[end + 1 :], False
                target.write(chunk)


def summary(batches: list[dict], refused: list[dict], finished: bool = True, unsent: int = 0) -> tuple[str, bool]:
    """A report of where the links stand (at the end, or when the client gave up waiting, for the
    books or for the server to take ``unsent`` more links), and whether every link ended stored."""
    counts = _total_counts(batches)
    counts[REJECTED] += len(refused)
    counts[NOT_SENT] += unsent
    problems: Counter[tuple[str, str]] = Counter()
    for link in [entry for batch in batches for entry in batch["links"]] + refused:
        status = link.get("status", link.get("outcome"))
        if status in SETTLED_BADLY:
            problems[(status, link.get("reason") or "")] += 1
    if unsent:
        problems[(NOT_SENT, "the server asked to wait past --timeout")] = unsent
    heading = "Done" if finished and not unsent else "Gave up waiting (--timeout)"
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


def parser() -> argparse.ArgumentParser:
    """The command line, with each option's default and the exit statuses in ``--help``."""
    exit_statuses = __doc__[__doc__.index("API token:") :]
    main_parser = argparse.ArgumentParser(
        prog="python -m client",
        description=__doc__.splitlines()[0],
        epilog=exit_statuses,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server", default="http://localhost:5000", help="the service's base URL (default: %(default)s)"
    )
    common.add_argument("--wait", action="store_true", help="follow the books until every one has settled")
    common.add_argument(
        "--out", type=Path, help="with --wait: write the records here, as CSV (.csv) or JSON Lines (.jsonl)"
    )
    common.add_argument("--refresh", action="store_true", help="fetch books again even when a fresh record exists")
    common.add_argument(
        "--interval", type=float, default=2.0, help="seconds between progress polls (default: %(default)s)"
    )
    common.add_argument(
        "--timeout",
        type=float,
        help="give up after this many seconds from the start, the waits the server asks for included: "
        f"stop sending or following, write the records stored so far (--out) and exit with status {GAVE_UP} "
        "(default: wait until every book has settled)",
    )
    common.add_argument(
        "--token",
        help=f"the API token, sent as a Bearer token on every request (default: ${TOKEN_VARIABLE}; "
        "prefer the variable, a command line shows in the process list)",
    )
    for name, about, source, source_about in (
        ("submit", "send links", "links", "a file of links, one per line, or - for standard input"),
        (
            "import",
            "send a Goodreads library export (CSV)",
            "export",
            "the CSV Goodreads exports (goodreads_library_export.csv), or - for standard input",
        ),
    ):
        command = commands.add_parser(
            name,
            parents=[common],
            help=f"{about} and, with --wait, follow the books and save the records",
            epilog=exit_statuses,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # A usage error of a command shows that command's usage, not the top-level one.
        command.set_defaults(usage_error=command.error)
        command.add_argument(source, help=source_about)
        if name == "submit":
            command.add_argument(
                "--batch-size", type=int, default=1000, help="links per request (default: %(default)s)"
            )
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    usage_error = args.usage_error
    if args.out and not args.wait:
        usage_error("--out needs --wait")
    if args.out and args.out.suffix.lower() not in EXPORT_FORMATS:
        usage_error(f"--out writes .csv or .jsonl files, by the extension; {str(args.out)!r} has neither")

    send = _sender(usage_error, args)

    token, token_source = args.token, "--token"
    if token is None:
        token, token_source = os.environ.get(TOKEN_VARIABLE) or None, TOKEN_VARIABLE
    if token is not None and not valid_token(token):
        usage_error(f"the API token in {token_source} must be printable ASCII without spaces")

    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    with requests.Session() as session:
        if token is not None:
            session.auth = BearerToken(token)
        api = Api(session, args.server.rstrip("/"), deadline, token_source if token is not None else None)
        try:
            sent = send(api)
            print(_sent_line(sent, "row" if args.command == "import" else "link"), file=sys.stderr)
            if sent.stopped:
                print(f"Stopped sending: {sent.stopped}; send the links not sent again later.", file=sys.stderr)
            if not args.wait:
                return GAVE_UP if sent.unsent else 0
            batches, finished = follow(api, sent.batch_ids, args.interval, sys.stderr) if sent.batch_ids else ([], True)
            if args.out:
                save(api, sent.batch_ids, args.out)
                stored = _total_counts(batches)[STORED]
                print(f"Wrote {_count(stored, 'record', 'records')} to {args.out}", file=sys.stderr)
        except Unauthorized as error:
            print(f"error: {error}", file=sys.stderr)
            return UNAUTHORIZED
        except OutOfTime as error:  # while following or saving: the links were sent
            print(f"Gave up waiting (--timeout): {error}", file=sys.stderr)
            return GAVE_UP
        except ClientError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    report, all_stored = summary(batches, sent.refused, finished, sent.unsent)
    print(report)
    if not finished or sent.unsent:
        print(
            "The books left go on being worked on: send the same links again later for their records "
            "(stored books are not fetched again, queued ones not queued twice).",
            file=sys.stderr,
        )
        return GAVE_UP
    return 0 if all_stored else 1


def _sender(usage_error: Callable[[str], NoReturn], args: argparse.Namespace) -> Callable[[Api], Sent]:
    """What the command sends, read from its file (or standard input) before anything is sent."""
    source = args.links if args.command == "submit" else args.export
    try:
        if args.command == "import":
            export = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        elif source == "-":
            links = read_links(sys.stdin)
        else:
            with open(source, encoding="utf-8") as stream:
                links = read_links(stream)
    except OSError as error:
        usage_error(f"cannot read {source}: {error.strerror}")
    if args.command == "import":
        if not export.strip():
            usage_error(f"{source} is empty")
        return lambda api: send_export(api, export, args.refresh)
    if not links:
        usage_error("no links to send")
    return lambda api: submit(api, links, max(1, args.batch_size), args.refresh)


def _sent_line(sent: Sent, noun: str) -> str:
    """How many links (or rows) went in how many batches, with the batches' ids."""
    total = sent.links + sent.unsent
    of = f"{sent.links} of {total} {noun}s" if sent.unsent else _count(total, noun, f"{noun}s")
    line = f"Sent {of} in {_count(len(sent.batch_ids), 'batch', 'batches')}"
    return line + (f": {' '.join(sent.batch_ids)}" if sent.batch_ids else "")
