"""A book's progress, as its one owner (books/progress.py) writes it: which operation spends an
attempt, what queueing again forgets, and the Lua functions the scripts are built from."""

from __future__ import annotations

from books.links import BookId
from books.progress import (
    ATTEMPTS,
    FALLBACK,
    LUA,
    NEXT_ATTEMPT_AT,
    ORIGIN_STRIKE,
    OWN_TROUBLE,
    PAUSED_SINCE,
    STATE,
    BookProgress,
)
from books.queue import BookQueue
from books.status import BookStatus
from books.store import BookStore


def fields(redis, book_id: str) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in redis.hgetall(BookProgress(redis).key(book_id)).items()}


def test_an_attempt_is_spent_only_with_the_books_own_outcome(redis):
    progress = BookProgress(redis)
    assert progress.started("7") == 1
    assert fields(redis, "7")[ATTEMPTS] == "0"  # started, nothing spent yet
    progress.deferred("7", "one odd answer", 100.0)
    progress.waiting_for_slot("7", "waiting for a request slot", 200.0)
    progress.paused("7", "the origin is paused", 300.0)
    assert fields(redis, "7")[ATTEMPTS] == "0"
    assert progress.started("7") == 1
    progress.ended("7", BookStatus.RETRYING, "failed: HTTP 500", 400.0)
    assert progress.started("7") == 2
    BookStore(redis).save_record("7", {"book_id": "7"}, attempt_spent=True)
    assert (fields(redis, "7")[STATE], fields(redis, "7")[ATTEMPTS]) == (BookStatus.STORED, "2")


def test_each_put_aside_says_why_and_until_when(redis):
    progress = BookProgress(redis)
    progress.deferred("7", "one odd answer", 100.0)
    assert (fields(redis, "7")[STATE], fields(redis, "7")[NEXT_ATTEMPT_AT]) == (BookStatus.RETRYING, "100.0")
    progress.waiting_for_slot("7", "a slot", 200.0)
    assert (fields(redis, "7")[STATE], fields(redis, "7")[NEXT_ATTEMPT_AT]) == (BookStatus.QUEUED, "200.0")
    progress.paused("7", "paused", 300.0)
    assert (fields(redis, "7")[STATE], fields(redis, "7")["reason"]) == (BookStatus.PAUSED, "paused")


def test_a_pause_is_timed_from_its_first_wait_and_forgotten_when_the_book_gives_up(redis):
    progress = BookProgress(redis)
    assert progress.paused_since("7", 10.0) == 10.0
    assert progress.paused_since("7", 20.0) == 10.0
    progress.paused("7", "paused", 30.0)
    progress.gave_up_waiting("7", BookStatus.BLOCKED, "waited too long")
    left = fields(redis, "7")
    assert left[STATE] == BookStatus.BLOCKED and PAUSED_SINCE not in left and NEXT_ATTEMPT_AT not in left
    assert progress.paused_since("7", 40.0) == 40.0


def test_an_origin_strike_counts_once(redis):
    progress = BookProgress(redis)
    assert progress.struck("7") is True
    assert progress.struck("7") is False


def test_queueing_again_starts_the_book_afresh(redis, settings):
    progress = BookProgress(redis)
    progress.ended("7", BookStatus.BLOCKED, "a wall")
    progress.paused_since("7", 10.0)
    progress.struck("7")
    progress.no_fallback_match("7")
    redis.hset(progress.key("7"), OWN_TROUBLE, 1)
    assert fields(redis, "7")[FALLBACK] == "none"

    BookQueue(redis, settings).enqueue_books([BookId("7")])

    left = fields(redis, "7")
    assert left[ATTEMPTS] == "0" and left[STATE] == BookStatus.BLOCKED
    assert not {PAUSED_SINCE, NEXT_ATTEMPT_AT, ORIGIN_STRIKE, OWN_TROUBLE, FALLBACK} & left.keys()


def test_many_books_are_read_in_one_round_trip(redis):
    progress = BookProgress(redis)
    progress.ended("1", BookStatus.FAILED, "no")
    assert progress.values(["1", "2"], STATE) == [BookStatus.FAILED.encode(), None]


def test_the_lua_functions_touch_the_fields_named_here(redis):
    progress = BookProgress(redis)
    key = progress.key("7")
    script = redis.register_script(
        LUA
        + """
progress.second_source_stored(KEYS[1], 'openlibrary')
progress.own_trouble(KEYS[1])
local own = progress.has_own_trouble(KEYS[1]) and 1 or 0
redis.call('HSET', KEYS[1], 'paused_since', 1, 'next_attempt_at', 2)
progress.pause_over(KEYS[1])
return {progress.source(KEYS[1]), progress.state(KEYS[1]), own}
"""
    )
    assert script(keys=[key]) == [b"openlibrary", b"", 1]
    assert fields(redis, "7") == {"source": "openlibrary", FALLBACK: "openlibrary", OWN_TROUBLE: "1"}
