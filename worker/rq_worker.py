"""The worker class ``rq worker --worker-class`` names: RQ's forking ``Worker``, whose
scheduler does not outlive it.

RQ runs its scheduler (which moves retries that are due back onto the queue) in a child
process that only stops when told to. When the worker is killed outright (SIGKILL, the
kernel's OOM killer), nobody tells it: it lives on as an orphan, holding the queue's
scheduler lock, scheduling for a worker that no longer exists. ``WorkerBoundScheduler``
checks every second that the worker that started it is still its parent, and stops
(releasing the lock) once it is not.
"""

from __future__ import annotations

import logging
import os
from multiprocessing.process import BaseProcess

from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler
from rq.worker import Worker

log = logging.getLogger(__name__)


class WorkerBoundScheduler(RQScheduler):
    """RQ's scheduler, stopping when the process that started it is gone."""

    def start(self) -> BaseProcess:
        self._worker_pid = os.getpid()
        return super().start()

    def heartbeat(self) -> None:
        """RQ's heartbeat, which the scheduler's loop sends every second; first, the parent check."""
        if os.getppid() != self._worker_pid and not self._stop_requested:
            log.warning("scheduler stopping: its worker (pid %d) is gone", self._worker_pid)
            self.request_stop()
        super().heartbeat()


class BookWorker(Worker):
    """RQ's ``Worker`` with a ``WorkerBoundScheduler``."""

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        if burst:  # a burst worker schedules in its own process, which cannot be orphaned
            return super()._start_scheduler(burst, logging_level, date_format, log_format)
        self.scheduler = WorkerBoundScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            self.scheduler.start()
