"""The worker's side of the origin-pause protocol (the fleet's shared state and its scripts are
books/origin.py; a book's pause fields, books/progress.py).

A job asks the gate before its first request and again before each (``Admission``): while the
fleet is paused it sends nothing (``OriginPaused``), unless it claimed the fleet's probe, which
asks for a book the origin served before (``probe``). An answer about the origin itself is
reported to the fleet (``report_trouble``), which says whether it was the book's own; the first
answer about a book ends a pause and puts the paused books back on the queue (``answered``).
A book that waits for the paused origin sleeps until the next probe (``park``).
"""

from __future__ import annotations

import logging
import math
import time

from books.links import BookId
from books.origin import OriginHealth, OriginState
from books.progress import BookProgress
from books.settings import Settings
from books.store import BookStore
from worker.context import cookies, session
from worker.decisions import Came, Met
from worker.fetch import AttemptFailed, OriginResponse, OriginTrouble, fetch_book_page, origin_trouble
from worker.ratelimit import FetchRateLimiter
from worker.recovery import WorkerRecovery

log = logging.getLogger(__name__)


class OriginPaused(Exception):
    """The fleet paused while this book waited for its request slot."""


# How long the job's own gate stands for its first request: asking again a moment later
# would only spend a round trip to Redis.
GATE_FRESH_SECONDS = 1.0


class Admission:
    """Lets a book's requests out while the origin is fine, or as the fleet's probe (claimed
    when the job starts, with the book to probe with: ``probe_book``)."""

    def __init__(self, health: OriginHealth, book_id: str, probing: bool, probe_book: str | None = None) -> None:
        self.health = health
        self.book_id = book_id
        self.probing = probing
        self.probe_book = probe_book if probe_book != book_id else None
        self.gated_until = time.monotonic() + GATE_FRESH_SECONDS  # the job has just asked

    def __call__(self) -> None:
        if self.probing:
            return
        if time.monotonic() < self.gated_until:
            self.gated_until = 0.0
            return
        # A job that found the origin fine does not become the probe midway: its own book could
        # be what the origin refuses; the next job claims the probe, with a book served before.
        if self.health.gate(self.book_id, may_probe=False)[0] == "wait":
            raise OriginPaused


def report_trouble(
    store: BookStore, health: OriginHealth, book_id: str, admission: Admission, trouble: OriginTrouble
) -> Came:
    """Report the answer to the fleet; it is the book's own if shown so, or met a second time
    while the fleet runs."""
    reason = trouble.reason
    if trouble.state in (OriginState.CHALLENGE, OriginState.REFUSED) and cookies().in_use:
        reason += "; the session cookies were refused or have expired"
    verdict, changed = health.report_trouble(
        book_id, trouble.state, reason, trouble.retry_after or 0, admission.probing
    )
    if verdict == "paused_now" or changed:
        log.warning(
            "origin paused: every worker stops fetching",
            extra={"fields": {"origin_state": trouble.state, "reason": reason, "book_id": book_id}},
        )
    own = verdict == "own" or (verdict == "counted" and not store.progress.struck(book_id))
    return Came(Met.ORIGIN_TROUBLE, reason, origin_state=trouble.state, retry_after=trouble.retry_after, own=own)


def probe(
    probe_book: BookId, config: Settings, store: BookStore, limiter: FetchRateLimiter, admission: Admission
) -> None:
    """The fleet's probe, for a book the origin served before rather than this job's own (which
    anyone may have chosen for the origin to refuse): ``OriginTrouble`` if the origin is still
    in trouble, else the fleet resumes and the job goes on with its own book."""
    try:
        response = fetch_book_page(probe_book, config, session(), limiter, admission)
    except AttemptFailed:  # an answer, if not a whole page: about that book, not the origin
        pass
    else:
        raise_origin_trouble(response, config, limiter)
    answered(store, None, admission.health)


def raise_origin_trouble(response: OriginResponse, config: Settings, limiter: FetchRateLimiter) -> None:
    """Raise the answer's ``OriginTrouble``, if it is about the origin; a rate limit also holds
    every worker's next request back for its Retry-After."""
    trouble = origin_trouble(response)
    if trouble:
        if trouble.state == OriginState.RATE_LIMIT:
            limiter.pause(trouble.retry_after or (config.retry_intervals or (60,))[0])
        raise trouble


def answered(store: BookStore, book_id: str | None, health: OriginHealth) -> None:
    """Goodreads answered about a book itself: the fleet's streak ends, a pause ends (the
    paused books go back on the queue at once), and this job's book's pause is over."""
    if health.report_success(book_id):
        released = WorkerRecovery(store.redis, health.settings).release_paused()
        log.warning(
            "origin resumed: Goodreads serves pages again",
            extra={"fields": {"book_id": book_id, "released": released}},
        )


def park(
    health: OriginHealth, progress: BookProgress, book_id: str, reason: str, paused_since: float, now: float
) -> int:
    """Put the book to sleep until the paused origin's next probe (the book that sends it), one
    longest interval later (the others: they are released when it works), or until it would
    have waited ORIGIN_PAUSE_MAX; returns the seconds to sleep."""
    wake_at, _prober = health.park(book_id)
    wake_at = min(wake_at, paused_since + health.settings.origin_pause_max)
    progress.paused(book_id, reason, wake_at)
    return max(1, math.ceil(wake_at - now))
