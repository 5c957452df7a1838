"""The refresh round: every REFRESH_EVERY seconds, queue the stalest books on the refresh queue.

A self-scheduling job on the control queue (see books/control.py): each run first schedules
the next, then tops the refresh queue up to REFRESH_BATCH books. Workers serve the refresh
queue only when the book queue is empty, and every fetch goes through the shared rate limiter,
so a refresh never delays a user's links and never exceeds FETCH_RATE.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import get_current_job

from books.control import schedule_next
from books.jobs import REFRESH_ROUND
from books.queue import BookQueue
from books.refresh import refresh_round
from books.settings import Settings
from books.status import Outcome
from worker.context import settings

log = logging.getLogger(__name__)


def schedule_round(redis: Redis, config: Settings) -> None:
    if config.refresh_every:
        schedule_next(redis, config, REFRESH_ROUND, config.refresh_every)


def run_refresh_round() -> int:
    """Queue the books due for a refresh; return how many were queued."""
    config = settings()
    job = get_current_job()
    assert job is not None, "runs as an RQ job"
    schedule_round(job.connection, config)
    outcomes = refresh_round(BookQueue(job.connection, config))
    queued = sum(outcome == Outcome.QUEUED for outcome in outcomes.values())
    log.info("refresh round", extra={"fields": {"due": len(outcomes), "queued": queued}})
    return queued
