"""What a book's job does next, decided from what came back: a pure function, no I/O.

``decide`` takes what one attempt met (``Came``), the origin's state as the job saw it
(``Origin``) and how many retries RQ has left, and answers a ``Decision``; worker/tasks.py
applies it (writes the book's progress, answers RQ). Keeping the choice apart from its effects
lets every branch be read, and tested, as one row of a table (tests/test_decisions.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from books.origin import FINAL_STATUS, OriginState
from books.status import BookStatus


class Met(StrEnum):
    """What an attempt met."""

    STORED = "stored"  # a book page, its record written
    NOT_FOUND = "not_found"  # HTTP 404 or 410
    ROBOTS = "robots"  # robots.txt disallows the page: never requested
    FAILURE = "failure"  # the book's own failure (a wall, 5xx, a broken page...)
    ORIGIN_TROUBLE = "origin_trouble"  # an answer about Goodreads itself
    ORIGIN_PAUSED = "origin_paused"  # the fleet is paused: no request went out
    SLOT_TOO_FAR = "slot_too_far"  # the next request slot is past FETCH_WAIT_MAX


class Kind(StrEnum):
    """What the job does next."""

    STORE = "store"  # done: the record is stored
    NOT_FOUND = "not_found"  # done: Goodreads has no such book
    BLOCK = "block"  # done: robots.txt disallows the page
    RETRY = "retry"  # RQ tries again after its backoff (``wait``: at least this long)
    FAIL = "fail"  # done: the last retry failed, the book ends ``status``
    DEFER = "defer"  # tried again after ``wait``, no attempt spent: one odd answer about the origin
    TRY_AGAIN = "try_again"  # run again in ``wait`` seconds, nothing written: the origin just recovered
    WAIT_FOR_SLOT = "wait_for_slot"  # tried again when a request slot comes near, at the front of the queue
    PARK = "park"  # waits for the paused origin's next probe
    GIVE_UP = "give_up"  # done: waited for the paused origin longer than ORIGIN_PAUSE_MAX


@dataclass(frozen=True)
class Came:
    """What one attempt met: a ``Met``, and for a failure or the origin's trouble its status (the
    book's ``failed`` or ``blocked``; the origin's state), reason, Retry-After, and whether the
    answer was shown to be the book's own."""

    met: Met
    reason: str = ""
    status: BookStatus = BookStatus.FAILED
    origin_state: OriginState = OriginState.OK
    retry_after: float | None = None
    own: bool = False
    wait: float = 0.0  # for SLOT_TOO_FAR: seconds to the next slot


@dataclass(frozen=True)
class Origin:
    """The origin as the job saw it, and the knobs the choice needs."""

    paused: bool
    state: OriginState = OriginState.OK
    waited: float = 0.0  # seconds this book has waited for the paused origin
    pause_max: float = 3600.0  # ORIGIN_PAUSE_MAX
    first_retry_interval: float = 1.0  # the first of RETRY_INTERVALS
    fetch_wait_max: float = 0.0  # FETCH_WAIT_MAX


@dataclass(frozen=True)
class Decision:
    """What to do: ``kind``, the state the book is left in, why, how long until it is tried
    again (whole seconds, as RQ's scheduler keeps them; for ``retry`` the least RQ's backoff
    may give; 0 when it is not), and whether the attempt is spent."""

    kind: Kind
    status: BookStatus
    reason: str = ""
    wait: int = 0
    spend_attempt: bool = False


def decide(came: Came, origin: Origin, retries_left: int) -> Decision:
    """The job's next step for what came back, the origin's state and RQ's retries left."""
    if came.met == Met.STORED:
        return Decision(Kind.STORE, BookStatus.STORED, spend_attempt=True)
    if came.met == Met.NOT_FOUND:
        return Decision(Kind.NOT_FOUND, BookStatus.NOT_FOUND, came.reason, spend_attempt=True)
    if came.met == Met.ROBOTS:
        return Decision(Kind.BLOCK, BookStatus.BLOCKED, came.reason, spend_attempt=True)
    if came.met == Met.SLOT_TOO_FAR:
        # RQ's scheduler keeps whole seconds and may run a job up to a second early.
        wait = max(1, math.ceil(came.wait - origin.fetch_wait_max))
        return Decision(Kind.WAIT_FOR_SLOT, BookStatus.QUEUED, came.reason, wait)
    if came.met == Met.FAILURE or (came.met == Met.ORIGIN_TROUBLE and came.own):
        status = came.status if came.met == Met.FAILURE else FINAL_STATUS[came.origin_state]
        if not retries_left:
            return Decision(Kind.FAIL, status, came.reason, spend_attempt=True)
        # RQ's scheduler keeps whole seconds and may run a retry up to a second early: add one.
        wait = math.ceil(came.retry_after) + 1 if came.retry_after else 0
        return Decision(Kind.RETRY, status, came.reason, wait, spend_attempt=True)
    # Put aside, no attempt spent: the origin's trouble (not shown the book's own), or the
    # fleet paused before a request went out.
    if not origin.paused:
        if came.met == Met.ORIGIN_PAUSED:  # the origin recovered a moment ago
            return Decision(Kind.TRY_AGAIN, BookStatus.QUEUED, wait=1)
        # RQ's scheduler keeps whole seconds and may run a job up to a second early: add one.
        wait = math.ceil(max(origin.first_retry_interval, came.retry_after or 0, 1)) + 1
        return Decision(Kind.DEFER, BookStatus.RETRYING, came.reason, wait)
    if origin.waited >= origin.pause_max:
        return Decision(Kind.GIVE_UP, FINAL_STATUS[origin.state])
    return Decision(Kind.PARK, BookStatus.PAUSED)
