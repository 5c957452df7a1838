"""The jobs this service enqueues, in one registry, and the one format they are written in.

Every enqueue (a book, a refresh, a callback check or delivery, a batch recount, the periodic
rounds) takes its function, queue, timeout, time-to-live and retries from a ``JobKind`` here,
and the workers run no function but those listed (``SERVICE_FUNCTIONS``, worker/jobs.py).

Jobs are JSON (``JobSerializer``): a job's call is ``[function, null, [args], {kwargs}]`` of
plain values, so reading a job never imports or calls anything, whoever wrote it into Redis.
Records stay pickled (books/store.py reads them with its restricted unpickler).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DeserializationError

from books.settings import Settings


class JobSerializer:
    """RQ's serializer for this service's jobs: compact JSON, plain values only."""

    @staticmethod
    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    @staticmethod
    def loads(data: bytes) -> Any:
        """The value; RQ's ``DeserializationError`` for anything that is not JSON (a pickle is
        never loaded)."""
        try:
            return json.loads(data)
        except ValueError as error:  # not UTF-8, not JSON
            raise DeserializationError(f"not JSON: {error}") from None


class Lane(StrEnum):
    """Which of the worker's queues a kind of job goes on (``Settings.worker_queues``)."""

    BOOKS = "books"  # the book queue, or the refresh queue for low-priority books
    CONTROL = "control"  # the service's own short jobs, served first
    CALLBACKS = "callbacks"  # callback deliveries, served after users' books


class Retries(StrEnum):
    """Which settings a kind of job's retries follow."""

    NONE = "none"
    BOOKS = "books"  # RETRY_MAX times, after RETRY_INTERVALS
    CALLBACKS = "callbacks"  # once per CALLBACK_RETRY_INTERVALS


# How long RQ keeps a finished or failed control job (for the dashboard).
CONTROL_RESULT_TTL = 3600


@dataclass(frozen=True)
class JobKind:
    """One kind of job: its name (the prefix of its job ids), the function a worker runs, its
    queue, and how long RQ keeps it once over (None: ``RESULT_TTL`` / ``FAILURE_TTL``)."""

    name: str
    func: str
    lane: Lane
    retries: Retries = Retries.NONE
    result_ttl: int | None = CONTROL_RESULT_TTL
    failure_ttl: int | None = CONTROL_RESULT_TTL

    def job_id(self, key: str) -> str:
        """The id of this kind's job for ``key`` (a book id, a batch id, a slot)."""
        return f"{self.name}-{key}"

    def queue_name(self, settings: Settings, low_priority: bool = False) -> str:
        if self.lane == Lane.CONTROL:
            return settings.control_queue_name
        if self.lane == Lane.CALLBACKS:
            return settings.callback_queue_name
        return settings.refresh_queue_name if low_priority else settings.queue_name

    def retry(self, settings: Settings) -> Retry | None:
        if self.retries == Retries.BOOKS and settings.retry_max:
            return Retry(max=settings.retry_max, interval=list(settings.retry_intervals))
        if self.retries == Retries.CALLBACKS and settings.callback_retry_intervals:
            intervals = list(settings.callback_retry_intervals)
            return Retry(max=len(intervals), interval=intervals)
        return None

    def options(self, settings: Settings) -> dict[str, Any]:
        """RQ's enqueue options for this kind (``Queue.create_job``'s names)."""
        return {
            "timeout": settings.job_timeout,
            "result_ttl": settings.result_ttl if self.result_ttl is None else self.result_ttl,
            "failure_ttl": settings.failure_ttl if self.failure_ttl is None else self.failure_ttl,
            "retry": self.retry(settings),
        }


BOOK = JobKind("book", "worker.tasks.parse_book", Lane.BOOKS, Retries.BOOKS, result_ttl=None, failure_ttl=None)
CALLBACKS_CHECK = JobKind("callbacks-check", "worker.callbacks.check_callbacks", Lane.CONTROL)
CALLBACK_DELIVERY = JobKind("callback", "worker.callbacks.deliver_callback", Lane.CALLBACKS, Retries.CALLBACKS)
# One recount at a time per batch (its id is unique while RQ keeps it): a finished one is
# deleted at once, a failed one kept a minute for the dashboard, no recount meanwhile.
BATCH_RECOUNT = JobKind("batch-counts", "worker.batches.recount_batch", Lane.CONTROL, result_ttl=0, failure_ttl=60)
REFRESH_ROUND = JobKind("refresh-round", "worker.refresh.run_refresh_round", Lane.CONTROL)
# A book's record filled from Open Library while Goodreads says no (worker/fallback.py); deleted
# once done, so that the book may be filled again after a new POST.
OPENLIBRARY_FILL = JobKind("openlibrary", "worker.openlibrary.fill_book", Lane.CONTROL, Retries.BOOKS, result_ttl=0)

JOB_KINDS = (BOOK, CALLBACKS_CHECK, CALLBACK_DELIVERY, BATCH_RECOUNT, REFRESH_ROUND, OPENLIBRARY_FILL)
# The only functions a worker runs.
SERVICE_FUNCTIONS = frozenset(kind.func for kind in JOB_KINDS)


def job_queue(redis: Redis, name: str) -> Queue:
    """An RQ queue of this service's: its jobs written and read as JSON."""
    return Queue(name, connection=redis, serializer=JobSerializer)
