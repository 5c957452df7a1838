"""One vocabulary for where a book stands, and what a POST did with each link."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BookStatus(StrEnum):
    """Where a book stands, as ``GET /getBookInfo``, batches and the client say it."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    PAUSED = "paused"  # waiting, attempts unspent, for Goodreads to serve pages again
    STORED = "stored"
    NOT_FOUND = "not_found"
    BLOCKED = "blocked"
    FAILED = "failed"
    UNKNOWN = "unknown"


IN_PROGRESS = frozenset({BookStatus.QUEUED, BookStatus.RUNNING, BookStatus.RETRYING, BookStatus.PAUSED})
# Final states of a book without a record; a new POST sends it again.
FINAL_FAILURES = frozenset({BookStatus.NOT_FOUND, BookStatus.BLOCKED, BookStatus.FAILED})


class Outcome(StrEnum):
    """What ``POST /parseGoodreadsLinks`` did with one link."""

    QUEUED = "queued"
    ALREADY_QUEUED = "already_queued"
    STORED = "stored"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"


@dataclass(frozen=True)
class BookState:
    """Where a book stands, with the last attempt's reason, count and time when known, and
    when a paused book will next be tried."""

    status: BookStatus
    reason: str | None = None
    attempts: int | None = None
    last_attempt_at: float | None = None
    next_attempt_at: float | None = None
