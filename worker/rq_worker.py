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
it is running but it is not (``WorkerRecovery.requeue_stranded``): the end of a job it finished
as the failover happened went to the old master and was lost with it. An idle worker waits
for a job in a blocking dequeue (BLPOP) that holds its connection to the master it began on,
and RQ's wait is ``WORKER_TTL - 15`` s: after a failover it would go on waiting there, on a
master the web no longer writes to, until the wait ended or the sentinels demoted it. With
Sentinel the wait is at most ``SENTINEL_DEQUEUE_TIMEOUT``, after which the worker's next
command asks the sentinels (``books.redis_client``): every worker, busy or idle, serves the
new master a few seconds after the switch.

With ``WORKER_FORK=false`` the supervisor runs ``InProcessBookWorker`` instead: the same
worker, but each job runs in the worker's own process, as RQ's ``SimpleWorker`` runs it,
without a fork (docs/operations.md, Workers, says what that gives up).

A worker killed outright (SIGKILL, the OOM killer) leaves its job ``started`` until its
heartbeat expires, a minute or more, before RQ retries it. The supervisor knows better: it
tells the next worker it starts the dead one's name, and that worker has RQ handle the dead
one's jobs at once as abandoned (``WorkerRecovery.settle_dead_worker``: retried after their retry
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
from typing import Any

from redis.client import Pipeline
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers, format_exc_info
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.worker import SimpleWorker, Worker
from rq.worker.base import SHUTDOWN_SIGNAL

from books.redis_client import master_address
from worker import context
from worker.fetch import AttemptFailed
from worker.jobs import ServiceJobsWorker
from worker.ratelimit import FetchRateLimiter
from worker.recovery import WorkerRecovery, scheduler_name
from worker.supervisor import PREDECESSOR_VARIABLE

# The longest a worker waits between books for the request rate, well inside its heartbeat's
# time to live (WORKER_TTL + 60 s): it waits outside any job, and heartbeats first.
PACING_BACKOFF_MAX = 30.0

# With Sentinel, the longest an idle worker waits for a job on one master before it asks the
# sentinels again (one BLPOP round trip per idle worker this often; RQ's own wait is 45 s).
SENTINEL_DEQUEUE_TIMEOUT = 5

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
        self.pace_after(queue)

    def pace_after(self, queue: Queue) -> None:
        """After a book (not after the service's own jobs), wait for the request rate (``pace``)."""
        config = context.settings()
        if queue.name in (config.queue_name, config.refresh_queue_name):
            self.pace(FetchRateLimiter.for_settings(self.connection, config))

    @property
    def dequeue_timeout(self) -> int:
        """RQ's wait for a job, but at most ``SENTINEL_DEQUEUE_TIMEOUT`` with Sentinel: a failover
        is only noticed between two waits, as a blocking wait stays on the master it began on."""
        timeout = int(super().dequeue_timeout)
        return min(timeout, SENTINEL_DEQUEUE_TIMEOUT) if context.settings().redis_sentinels else timeout

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ logs every failed job as an ERROR with its traceback: for a book that failed as
        pages do (an ``AttemptFailed`` of its own, already logged as the one ``book attempt``
        line, a WARNING), the traceback only at DEBUG; an unexpected error (an ``AttemptFailed``
        caused by another) stays RQ's ERROR."""
        failure = exc_info[1] if len(exc_info) > 1 else None
        if not isinstance(failure, AttemptFailed) or failure.__cause__ is not None:
            return super().handle_exception(job, *exc_info)
        self.log.debug("Worker %s: job %s: %s\n%s", self.name, job.id, failure, format_exc_info(exc_info))
        call_exception_handlers(self._exc_handlers, job, *exc_info)

    def register_birth(self) -> None:
        """RQ's registration; then the jobs of the worker the supervisor ran before this one,
        if it died running any, are handled as abandoned now."""
        super().register_birth()
        predecessor = os.environ.get(PREDECESSOR_VARIABLE)
        if predecessor and _prctl is not None:
            settled = WorkerRecovery(self.connection, context.settings()).settle_dead_worker(predecessor)
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
        requeued = WorkerRecovery(self.connection, context.settings()).requeue_stranded(self.name, running)
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


class InProcessBookWorker(BookWorker):
    """``BookWorker`` running each job in its own process, as RQ's ``SimpleWorker`` does: no fork,
    no new Redis connection, and one fetching session kept from book to book (``WORKER_FORK=false``).

    RQ's ``Worker`` methods that assume a horse are ``SimpleWorker``'s here: the heartbeat given
    as a job starts covers the job's whole timeout (no heartbeats come while it runs), and
    there is no horse to kill (``Worker.kill_horse`` would signal this worker's own process
    group, the supervisor's too, when asked to stop a job)."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        SimpleWorker.execute_job(self, job, queue)  # type: ignore[arg-type]  # RQ's own path, on this worker
        self.pace_after(queue)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return SimpleWorker.get_heartbeat_ttl(self, job, working_time)  # type: ignore[arg-type]

    def kill_horse(self, sig: signal.Signals = SHUTDOWN_SIGNAL) -> None:
        """No horse, nothing to kill: a stop-job command leaves the job running to its end or
        its timeout; a cold shutdown ends it with the worker."""
