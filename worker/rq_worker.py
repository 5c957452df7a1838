"""The worker class ``rq worker --worker-class`` names: RQ's forking ``Worker``, whose
scheduler does not outlive it.

RQ runs its scheduler (which moves retries that are due back onto the queue) in a child
process that only stops when told to. When the worker is killed outright (SIGKILL, the
kernel's OOM killer), nobody tells it: it lives on as an orphan, holding the queue's
scheduler lock, scheduling for a worker that no longer exists. ``WorkerBoundScheduler``
checks every second that the worker that started it is still its parent, and stops
(releasing the lock) once it is not.

After each book it fetched, the worker also paces itself to the shared request rate
(``FETCH_RATE``): when every request slot within ``FETCH_WAIT_MAX`` is already taken, a
book it took now would only be put aside again (worker/ratelimit.py). So it waits, outside
any job, until a slot could come within reach, plus a random share of a back-off that
doubles each time it finds the slots taken again (up to ``PACING_BACKOFF_MAX``). However
many workers there are, those in excess of the rate mostly wait here, and only a few of
them at a time take a book they must put aside.

With Sentinel, at each heartbeat between jobs the worker also looks whether its client
moved to a new master since the last one; if so, it puts back the jobs the new master says
it is running but it is not (``BookQueue.requeue_stranded``): the end of a job it finished
as the failover happened went to the old master and was lost with it.

A worker killed outright (SIGKILL, the OOM killer) leaves its job ``started`` until its
heartbeat expires, a minute or more, before RQ retries it. The supervisor knows better: it
tells the next worker it starts the dead one's name, and that worker has RQ handle the dead
one's jobs at once as abandoned (``BookQueue.settle_dead_worker``: retried after their retry
interval, or failed). That is safe only because a work horse dies with its worker: on Linux
the kernel kills it when its parent dies (``PR_SET_PDEATHSIG``); elsewhere nothing is
settled early and RQ's own cleanup takes its time.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from redis.client import Pipeline
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.worker import Worker

from books.queue import BookQueue, scheduler_name
from books.redis_client import master_address
from worker import tasks
from worker.jobs import ServiceJobsWorker
from worker.ratelimit import FetchRateLimiter
from worker.supervisor import PREDECESSOR_VARIABLE

# The longest a worker waits between books for the request rate, well inside its heartbeat's
# time to live (WORKER_TTL + 60 s): it waits outside any job, and heartbeats first.
PACING_BACKOFF_MAX = 30.0

PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)


def _load_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_prctl = _load_prctl()


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent dies, and die now if it already has
    (Linux's ``PR_SET_PDEATHSIG``; nothing elsewhere)."""
    if _prctl is None:
        return
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


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


class BookWorker(ServiceJobsWorker, Worker):
    """RQ's ``Worker`` with a ``WorkerBoundScheduler``, paced to the shared request rate, whose
    work horses die with it, and which takes up the jobs a dead predecessor or a failover
    left looking ``started``; it runs the service's own jobs only (worker/jobs.py)."""

    pacing_backoff = 0.0
    master_seen: tuple[str, int] | None = None

    def execute_job(self, job: Job, queue: Queue) -> None:
        super().execute_job(job, queue)
        config = tasks.settings()
        if queue.name in (config.queue_name, config.refresh_queue_name):
            self.pace(FetchRateLimiter.for_settings(self.connection, config))

    def register_birth(self) -> None:
        """RQ's registration; then the jobs of the worker the supervisor ran before this one,
        if it died running any, are handled as abandoned now."""
        super().register_birth()
        predecessor = os.environ.get(PREDECESSOR_VARIABLE)
        if predecessor and _prctl is not None:
            settled = BookQueue(self.connection, tasks.settings()).settle_dead_worker(predecessor)
            if settled:
                log.warning("worker %s died running %s; handled as abandoned", predecessor, ", ".join(settled))

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """RQ's work horse, which dies with its worker: so no job goes on running unseen once
        its worker is gone and its successor has handed it back to RQ."""
        if self.pid is not None:
            die_with_parent(self.pid)
        super().main_work_horse(job, queue)

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat; then, unless it is part of a job's heartbeats, the master check."""
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            self.requeue_if_master_moved()

    def requeue_if_master_moved(self) -> None:
        """Put back this worker's stranded jobs once its client is on a new master."""
        master = master_address(self.connection)
        if master is None or master == self.master_seen:
            return
        moved, self.master_seen = self.master_seen is not None, master
        if not moved:
            return
        running = [execution.composite_key for execution in self.executions.values()]
        requeued = BookQueue(self.connection, tasks.settings()).requeue_stranded(self.name, running)
        if requeued:
            log.warning("on the new master %s:%s, put back jobs whose end was lost: %s", *master, ", ".join(requeued))

    def pace(self, limiter: FetchRateLimiter) -> None:
        """Wait until a request slot could come within reach, and a random share of the
        back-off, when every slot within reach is taken; reset the back-off when one is free."""
        room_in = limiter.room_in()
        if not room_in:
            self.pacing_backoff = 0.0
            return
        interval = limiter.interval_us / 1_000_000
        self.pacing_backoff = min(PACING_BACKOFF_MAX, max(2 * self.pacing_backoff, interval))
        wait = min(PACING_BACKOFF_MAX, room_in + random.uniform(0, self.pacing_backoff))
        self.procline(f"Waiting {wait:.1f} s for a request slot")
        self.heartbeat()
        time.sleep(wait)  # a stop signal raises StopRequested here, as while waiting for a job

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
            name=scheduler_name(self.name),
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            self.scheduler.start()
