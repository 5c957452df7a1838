"""The job's choice, as a table: what came back, the origin's state and the retries left give
one decision (worker/decisions.py; no Redis, no processes)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from books.origin import OriginState
from books.status import BookStatus
from worker.decisions import Came, Decision, Kind, Met, Origin, decide

FINE = Origin(paused=False, first_retry_interval=5, fetch_wait_max=10)
CHALLENGED = Origin(paused=True, state=OriginState.CHALLENGE, waited=60, pause_max=3600)
UNREACHABLE = Origin(paused=True, state=OriginState.UNREACHABLE, waited=0, pause_max=3600)
WAITED_TOO_LONG = Origin(paused=True, state=OriginState.REFUSED, waited=3600, pause_max=3600)
WAITED_TOO_LONG_UNREACHABLE = Origin(paused=True, state=OriginState.UNREACHABLE, waited=4000, pause_max=3600)

WALL = Came(Met.FAILURE, "a sign-in wall", BookStatus.BLOCKED)
ERROR_503 = Came(Met.FAILURE, "Goodreads failed to answer (HTTP 503)", retry_after=30)
BROKEN = Came(Met.FAILURE, "no book data in the page")
CHALLENGE = Came(Met.ORIGIN_TROUBLE, "a challenge", origin_state=OriginState.CHALLENGE)
CHALLENGE_OWN = Came(Met.ORIGIN_TROUBLE, "a challenge", origin_state=OriginState.CHALLENGE, own=True)
NO_ANSWER_OWN = Came(Met.ORIGIN_TROUBLE, "no answer", origin_state=OriginState.UNREACHABLE, own=True)
RATE_LIMITED = Came(Met.ORIGIN_TROUBLE, "HTTP 429", origin_state=OriginState.RATE_LIMIT, retry_after=42.5)
RATE_LIMITED_OWN = Came(Met.ORIGIN_TROUBLE, "HTTP 429", origin_state=OriginState.RATE_LIMIT, retry_after=8, own=True)
SLOT = Came(Met.SLOT_TOO_FAR, "waiting for a request slot", wait=25.2)
SLOT_NEAR = Came(Met.SLOT_TOO_FAR, "waiting for a request slot", wait=10.5)
PAUSED = Came(Met.ORIGIN_PAUSED)

TABLE = [
    # what came back, the origin, retries left -> the decision
    ("page", Came(Met.STORED), FINE, 3, Decision(Kind.STORE, BookStatus.STORED, spend_attempt=True)),
    ("page, no retries left", Came(Met.STORED), FINE, 0, Decision(Kind.STORE, BookStatus.STORED, spend_attempt=True)),
    (
        "404",
        Came(Met.NOT_FOUND, "HTTP 404"),
        FINE,
        3,
        Decision(Kind.NOT_FOUND, BookStatus.NOT_FOUND, "HTTP 404", spend_attempt=True),
    ),
    (
        "robots.txt",
        Came(Met.ROBOTS, "disallowed"),
        FINE,
        3,
        Decision(Kind.BLOCK, BookStatus.BLOCKED, "disallowed", spend_attempt=True),
    ),
    ("a wall, retries left", WALL, FINE, 2, Decision(Kind.RETRY, BookStatus.BLOCKED, WALL.reason, 0, True)),
    ("a wall, none left", WALL, FINE, 0, Decision(Kind.FAIL, BookStatus.BLOCKED, WALL.reason, 0, True)),
    (
        "503, Retry-After stretches",
        ERROR_503,
        FINE,
        1,
        Decision(Kind.RETRY, BookStatus.FAILED, ERROR_503.reason, 31, True),
    ),
    ("503, none left", ERROR_503, FINE, 0, Decision(Kind.FAIL, BookStatus.FAILED, ERROR_503.reason, 0, True)),
    ("a broken page", BROKEN, FINE, 5, Decision(Kind.RETRY, BookStatus.FAILED, BROKEN.reason, 0, True)),
    ("a broken page, none left", BROKEN, FINE, 0, Decision(Kind.FAIL, BookStatus.FAILED, BROKEN.reason, 0, True)),
    # the origin's trouble shown to be the book's own: the book's own failure, final state by kind
    ("own challenge", CHALLENGE_OWN, FINE, 1, Decision(Kind.RETRY, BookStatus.BLOCKED, "a challenge", 0, True)),
    (
        "own challenge, none left",
        CHALLENGE_OWN,
        FINE,
        0,
        Decision(Kind.FAIL, BookStatus.BLOCKED, "a challenge", 0, True),
    ),
    ("own no answer", NO_ANSWER_OWN, FINE, 0, Decision(Kind.FAIL, BookStatus.FAILED, "no answer", 0, True)),
    (
        "own, while paused",
        CHALLENGE_OWN,
        CHALLENGED,
        1,
        Decision(Kind.RETRY, BookStatus.BLOCKED, "a challenge", 0, True),
    ),
    ("own 429, Retry-After", RATE_LIMITED_OWN, FINE, 1, Decision(Kind.RETRY, BookStatus.BLOCKED, "HTTP 429", 9, True)),
    # the origin's trouble, not the book's: put aside, no attempt spent
    ("one odd answer", CHALLENGE, FINE, 3, Decision(Kind.DEFER, BookStatus.RETRYING, "a challenge", 6)),
    ("one odd answer, none left", CHALLENGE, FINE, 0, Decision(Kind.DEFER, BookStatus.RETRYING, "a challenge", 6)),
    ("one 429, its Retry-After", RATE_LIMITED, FINE, 3, Decision(Kind.DEFER, BookStatus.RETRYING, "HTTP 429", 44)),
    ("the trouble paused the fleet", CHALLENGE, CHALLENGED, 3, Decision(Kind.PARK, BookStatus.PAUSED)),
    ("paused, unreachable", RATE_LIMITED, UNREACHABLE, 0, Decision(Kind.PARK, BookStatus.PAUSED)),
    ("paused too long", CHALLENGE, WAITED_TOO_LONG, 3, Decision(Kind.GIVE_UP, BookStatus.BLOCKED)),
    # the fleet paused before a request went out
    ("gate closed", PAUSED, CHALLENGED, 3, Decision(Kind.PARK, BookStatus.PAUSED)),
    ("gate closed, none left", PAUSED, CHALLENGED, 0, Decision(Kind.PARK, BookStatus.PAUSED)),
    ("gate closed too long", PAUSED, WAITED_TOO_LONG, 3, Decision(Kind.GIVE_UP, BookStatus.BLOCKED)),
    ("unreachable too long", PAUSED, WAITED_TOO_LONG_UNREACHABLE, 3, Decision(Kind.GIVE_UP, BookStatus.FAILED)),
    ("the origin just recovered", PAUSED, FINE, 3, Decision(Kind.TRY_AGAIN, BookStatus.QUEUED, wait=1)),
    # the request slot is too far: back at the front when it comes near, no attempt spent
    ("slot too far", SLOT, FINE, 3, Decision(Kind.WAIT_FOR_SLOT, BookStatus.QUEUED, SLOT.reason, 16)),
    ("slot just too far", SLOT_NEAR, FINE, 0, Decision(Kind.WAIT_FOR_SLOT, BookStatus.QUEUED, SLOT.reason, 1)),
    (
        "slot too far, paused",
        SLOT,
        replace(CHALLENGED, fetch_wait_max=10),
        3,
        Decision(Kind.WAIT_FOR_SLOT, BookStatus.QUEUED, SLOT.reason, 16),
    ),
]


@pytest.mark.parametrize(
    ("came", "origin", "retries_left", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE]
)
def test_decide(came, origin, retries_left, expected):
    assert decide(came, origin, retries_left) == expected


def test_only_the_books_own_answer_spends_an_attempt():
    spent = {row[0] for row in TABLE if decide(*row[1:4]).spend_attempt}
    assert spent == {
        row[0] for row in TABLE if row[1].met in (Met.STORED, Met.NOT_FOUND, Met.ROBOTS, Met.FAILURE) or row[1].own
    }


def test_every_kind_is_in_the_table():
    assert {row[4].kind for row in TABLE} == set(Kind)
