"""The worker's Redis client class, which ``rq worker --connection-class`` names.

A worker waits for Redis instead of giving up on it. RQ's worker quits on most Redis
errors (a dropped connection while it watches a job, ``OOM`` while it schedules a retry),
and so does its scheduler, and so does a job half-way through storing its book. Every
command of the worker process, its scheduler and its work horses therefore goes through
``PatientRetry``: on a lost connection, a timeout, Redis still loading its data or Redis
out of memory it reconnects and tries again, with jittered exponential back-off up to
``WORKER_REDIS_BACKOFF_MAX`` seconds, for as long as it takes. A job still stops at its
own timeout; what it was doing when Redis went away resumes when Redis is back.

With ``REDIS_SENTINELS`` set, ``WorkerRedis.from_url`` makes a client of the master the
sentinels name (``books.redis_client``), with the same patience: a failover is an outage
like another, and a ``READONLY`` answer from the demoted master a lost connection, after
which the client asks the sentinels again.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError, OutOfMemoryError, TimeoutError
from redis.retry import Retry

from books.redis_client import redis_client
from worker.context import settings

_DRIVER = DriverInfo(lib_version=redis.__version__)
# BusyLoadingError (Redis replaying its data at start) is a ConnectionError.
RETRIED_ERRORS = (ConnectionError, TimeoutError, socket.timeout, OutOfMemoryError)

T = TypeVar("T")
log = logging.getLogger(__name__)


class PatientRetry(Retry):
    """redis-py's ``Retry`` without a limit on attempts, saying when Redis fails and when it is back."""

    def __init__(self, backoff_max: float) -> None:
        super().__init__(ExponentialWithJitterBackoff(cap=backoff_max, base=0.25), -1, RETRIED_ERRORS)

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        failures = 0

        def noted_fail(error: Exception, count: int) -> Any:
            nonlocal failures
            failures = count
            if count == 1:
                log.warning("Redis failed (%s: %s); trying again with back-off", type(error).__name__, error)
            return fail(error, count) if with_failure_count else fail(error)

        result = super().call_with_retry(do, noted_fail, is_retryable, with_failure_count=True)
        if failures:
            log.info("Redis answers again after %d failed attempts", failures)
        return result


class WorkerRedis(redis.Redis):
    """``redis.Redis`` that waits out Redis outages (``PatientRetry``) and is told its own version up front.

    Every work horse is a fresh fork, so it opens a fresh connection, and for each new
    connection redis-py reads its version from the installed package's metadata: some
    1.7 ms, a tenth of a book's CPU. Given once here, the lookup is skipped; ``CLIENT
    SETINFO`` still reports the same library name and version.
    """

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> WorkerRedis:
        """A client of ``url``'s server (RQ passes ``REDIS_URL``), or with Sentinel of the master
        the sentinels name, reached with ``url``'s database, credentials and TLS."""
        config = settings()
        kwargs.setdefault("driver_info", _DRIVER)
        kwargs.setdefault("retry", PatientRetry(config.worker_redis_backoff_max))
        kwargs.setdefault("socket_connect_timeout", config.redis_socket_timeout)
        return redis_client(replace(config, redis_url=url), cls, **kwargs)
