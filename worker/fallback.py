"""When Goodreads says no, ask the second source (``FALLBACK_SOURCE``) for the book.

``after_attempt`` runs once after every attempt at a book, whatever its end. It asks for an
Open Library fill (worker/openlibrary.py) when the book waits because Goodreads challenges or
refuses the fleet (``paused`` for a challenge or a refusal), or has ended ``blocked``, and the
book has no record yet from Goodreads, no fill asked for, and no answer from a fill since it
was queued. The book's own job goes on as before: it stays due for Goodreads, whose record
replaces Open Library's when it comes.

Fills are spaced at the pace Open Library's requests allow (``OPENLIBRARY_RATE`` over
``REQUESTS_PER_FILL``), reserved in Redis as the request slots are, so that however many
books wait, each fill finds its requests' slots near when it runs instead of all of them
trying at once.
"""

from __future__ import annotations

from redis import Redis
from rq.exceptions import DuplicateJobError
from rq.job import Job

from books.control import enqueue_control
from books.jobs import OPENLIBRARY_FILL
from books.origin import OriginHealth, OriginState
from books.record import OPENLIBRARY
from books.settings import Settings
from books.status import BookStatus
from books.store import BookStore
from worker.ratelimit import FetchRateLimiter

# Requests a fill sends, about: the search (or the ISBN and its redirect) and the work.
REQUESTS_PER_FILL = 2
# The states in which Goodreads says no to every book, as opposed to being out of reach.
REFUSING = (OriginState.CHALLENGE, OriginState.REFUSED)


def after_attempt(redis: Redis, config: Settings, book_id: str) -> bool:
    """Ask for the book's fill if Goodreads said no and nothing was asked or found yet; return
    whether it was asked."""
    if config.fallback_source == "none":
        return False
    store = BookStore(redis, config.key_prefix)
    with redis.pipeline(transaction=False) as pipe:
        store.progress.read(pipe, book_id)
        pipe.exists(store.record_key(book_id))
        pipe.exists(Job.key_for(OPENLIBRARY_FILL.job_id(book_id)))
        (state, source, fallback), has_record, asked = pipe.execute()
    if fallback or asked or (has_record and source != OPENLIBRARY.encode()):
        return False
    if state == BookStatus.PAUSED.encode():
        if OriginHealth(redis, config).snapshot().state not in REFUSING:
            return False
    elif state != BookStatus.BLOCKED.encode():
        return False
    return schedule_fill(redis, config, book_id)


def schedule_fill(redis: Redis, config: Settings, book_id: str) -> bool:
    """Put the book's fill on the control queue at its turn; False if one is there already."""
    pace = FetchRateLimiter(
        redis, f"{config.key_prefix}:openlibrary:next-fill", config.openlibrary_rate / REQUESTS_PER_FILL
    )
    try:
        enqueue_control(redis, config, OPENLIBRARY_FILL, book_id, unique=True, delay=pace.reserve())
    except DuplicateJobError:
        return False
    return True
