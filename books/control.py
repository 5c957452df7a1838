"""The service's own jobs (callback checks, batch recounts, refresh rounds) on the control queue.

Workers serve the control queue before the book queue (``Settings.worker_queues``), so a
backlog of books never delays a callback or a refresh round; these jobs are short.

A periodic job runs in slots of its interval: the next run's job id names its slot
(``<name>-<slot>``) and is scheduled with RQ's atomic ``unique`` check, so every worker and
web process may ask for it and exactly one job per slot exists. A run asks for the next one
first, so a run that dies does not end the chain; each worker asks at start too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq.exceptions import DuplicateJobError

from books.jobs import JobKind, job_queue
from books.settings import Settings


def schedule_next(redis: Redis, settings: Settings, kind: JobKind, interval: int) -> bool:
    """Schedule a run of ``kind`` at the start of the next slot of ``interval`` seconds,
    unless it is scheduled already; return whether this call scheduled it."""
    slot = int(time.time() // interval) + 1
    try:
        job_queue(redis, kind.queue_name(settings)).enqueue_at(
            datetime.fromtimestamp(slot * interval, UTC),
            kind.func,
            job_id=kind.job_id(str(slot)),
            unique=True,
            **_enqueue_options(kind, settings),
        )
    except DuplicateJobError:
        return False
    return True


def enqueue_control(
    redis: Redis, settings: Settings, kind: JobKind, key: str, *args: Any, unique: bool = False, delay: float = 0
) -> None:
    """Run ``kind`` for ``key`` (its job id's end, and its first argument) on its queue as
    soon as a worker is free, or ``delay`` seconds from now; with ``unique``, raise RQ's
    ``DuplicateJobError`` while a job of that id exists."""
    queue = job_queue(redis, kind.queue_name(settings))
    options = {"job_id": kind.job_id(key), "unique": unique, **_enqueue_options(kind, settings)}
    if delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), kind.func, key, *args, **options)
    else:
        queue.enqueue(kind.func, key, *args, **options)


def _enqueue_options(kind: JobKind, settings: Settings) -> dict[str, Any]:
    """The kind's options under the names ``Queue.enqueue`` and ``enqueue_at`` take."""
    options = kind.options(settings)
    return {"job_timeout": options.pop("timeout"), **options}
