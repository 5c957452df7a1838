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
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError

from books.settings import Settings

# How long RQ keeps a finished or failed control job (for the dashboard).
RESULT_TTL = 3600


def control_queue(redis: Redis, settings: Settings) -> Queue:
    return Queue(settings.control_queue_name, connection=redis)


def schedule_next(redis: Redis, settings: Settings, name: str, func: str, interval: int) -> bool:
    """Schedule the run of ``func`` at the start of the next slot of ``interval`` seconds,
    unless it is scheduled already; return whether this call scheduled it."""
    slot = int(time.time() // interval) + 1
    try:
        control_queue(redis, settings).enqueue_at(
            datetime.fromtimestamp(slot * interval, UTC),
            func,
            job_id=f"{name}-{slot}",
            unique=True,
            result_ttl=RESULT_TTL,
            failure_ttl=RESULT_TTL,
            job_timeout=settings.job_timeout,
        )
    except DuplicateJobError:
        return False
    return True


def enqueue_control(
    redis: Redis, settings: Settings, func: str, *args: Any, queue_name: str | None = None, **options: Any
) -> None:
    """Run ``func`` on the control queue (or the service's queue ``queue_name``) as soon as a
    worker is free; ``options`` go to RQ's ``enqueue`` (and may set their own ``result_ttl`` or
    ``failure_ttl``)."""
    defaults = {"result_ttl": RESULT_TTL, "failure_ttl": RESULT_TTL, "job_timeout": settings.job_timeout}
    queue = Queue(queue_name, connection=redis) if queue_name else control_queue(redis, settings)
    queue.enqueue(func, *args, **(defaults | options))
