"""The job class the workers run: RQ's ``Job``, read as JSON, running the service's own
functions only.

Anyone who can write to Redis can write a job hash in RQ's layout. RQ's own job would unpickle
its data (a pickle runs code as it loads) and import and call whatever function it names.
``ServiceJob`` reads a job's data with ``JobSerializer`` only (never pickle), and runs it only
if it names one of ``SERVICE_FUNCTIONS`` (books/jobs.py) as a plain function (no instance),
without callbacks or webhooks (the service's jobs have none). Anything else fails, with its
reason in the job's failure, before anything it names is imported; it is not retried.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from redis import Redis
from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.worker import BaseWorker

from books.jobs import SERVICE_FUNCTIONS, JobSerializer, job_queue
from books.settings import Settings
from books.store import PlainValuesUnpickler

NOT_JSON = (
    "the job's data is not this service's JSON (a job queued by an earlier version, or written "
    "into Redis by someone else): it was not loaded"
)
PICKLED_NOT_CARRIED_OVER = (
    "queued pickled by an earlier version, and not a plain call of one of this service's jobs: "
    "not carried over to JSON, not loaded"
)
# Jobs whose data one round trip reads while pickled jobs are carried over.
MIGRATION_CHUNK = 1000


class NotAServiceJob(Exception):
    """The job names a function, callback or webhook that is not one of the service's jobs."""


class ServiceJob(Job):
    """RQ's job, JSON only, run only when it is one of the service's (see the module's docstring)."""

    def __init__(self, id: str | None = None, connection: Redis | None = None, serializer: Any = None) -> None:
        super().__init__(id, connection, JobSerializer)

    def _deserialize_data(self) -> None:
        """The call as ``JobSerializer`` wrote it: ``[function, null, [args], {kwargs}]``."""
        try:
            call = JobSerializer.loads(self.data)
        except DeserializationError:
            raise DeserializationError(NOT_JSON) from None
        if not (
            isinstance(call, list)
            and len(call) == 4
            and isinstance(call[0], str)
            and isinstance(call[2], list)
            and isinstance(call[3], dict)
        ):
            raise DeserializationError(NOT_JSON)
        self._func_name, self._instance, self._args, self._kwargs = call[0], call[1], tuple(call[2]), call[3]

    def refusal(self) -> str | None:
        """Why this job must not run, or None for one of the service's jobs."""
        try:
            name = self.func_name
        except DeserializationError as error:
            return str(error)
        if name not in SERVICE_FUNCTIONS or self.instance is not None:
            return f"{name!r} is not a job of this service: it was not run"
        if self._success_callback_name or self._failure_callback_name or self._stopped_callback_name or self.webhooks:
            return "the job names a callback or webhook: not a job of this service, it was not run"
        return None

    @property
    def func(self) -> Any:
        reason = self.refusal()
        if reason:
            raise NotAServiceJob(reason)
        return super().func

    @property
    def should_retry(self) -> bool:
        """RQ's retries, for the service's jobs only: a refused job fails at once."""
        return self.refusal() is None and super().should_retry

    # The service's jobs name no callbacks, and a job that does is refused: none is imported.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        """None: the service's jobs have no webhooks, and a job that names one is refused."""


class ServiceJobsWorker(BaseWorker):
    """Put before an RQ worker class among the bases: the worker reads every job as a
    ``ServiceJob``, whatever class or serializer its command line names; its queues,
    registries and scheduler all read JSON."""

    def __init__(self, queues: str | Queue | Sequence[str] | Sequence[Queue], *args: Any, **kwargs: Any) -> None:
        kwargs["job_class"] = ServiceJob
        kwargs["serializer"] = JobSerializer
        listed: list[str | Queue] = [queues] if isinstance(queues, str | Queue) else list(queues)
        # By name: RQ makes each queue with the worker's job class and serializer.
        names = [queue.name if isinstance(queue, Queue) else queue for queue in listed]
        super().__init__(names, *args, **kwargs)


def migrate_pickled_jobs(redis: Redis, settings: Settings) -> tuple[int, int]:
    """Rewrite as JSON, once (``<KEY_PREFIX>:jobs:json`` marks it done), the jobs an earlier
    version queued pickled that may still run: on the worker's queues, scheduled for a retry,
    or left running. A pickle is read with the records' restricted unpickler (plain values
    only: nothing is imported or called); one that is not a plain call of one of the service's
    functions fails, with the reason, instead. Returns how many were rewritten and failed."""
    marker = f"{settings.key_prefix}:jobs:json"
    if redis.exists(marker):
        return 0, 0
    rewritten = failed = 0
    for name in settings.worker_queues:
        queue = job_queue(redis, name)
        job_ids = [
            *queue.get_job_ids(),
            *queue.scheduled_job_registry.get_job_ids(),
            *queue.started_job_registry.get_job_ids(),
        ]
        for start in range(0, len(job_ids), MIGRATION_CHUNK):
            chunk = job_ids[start : start + MIGRATION_CHUNK]
            with redis.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.hget(Job.key_for(job_id), "data")
                stored = pipe.execute()
            for job_id, data in zip(chunk, stored, strict=True):
                if data is None or _is_json(data):
                    continue
                call = _pickled_call(data)
                if call is None:
                    _fail(queue, job_id, PICKLED_NOT_CARRIED_OVER)
                    failed += 1
                    continue
                with redis.pipeline(transaction=False) as pipe:
                    pipe.hset(Job.key_for(job_id), "data", JobSerializer.dumps(call))
                    pipe.hdel(Job.key_for(job_id), "meta")  # the service keeps nothing there
                    pipe.execute()
                rewritten += 1
    redis.set(marker, 1)
    return rewritten, failed


def _stored_call(data: bytes) -> bytes:
    """A job's data as RQ stores it: zlib-compressed, or not (RQ reads both)."""
    try:
        return zlib.decompress(data)
    except zlib.error:
        return data


def _is_json(data: bytes) -> bool:
    try:
        JobSerializer.loads(_stored_call(data))
    except DeserializationError:
        return False
    return True


def _pickled_call(data: bytes) -> list[Any] | None:
    """The call an earlier version pickled, as plain values, if it is one of the service's."""
    try:
        call = PlainValuesUnpickler(_stored_call(data)).load()
    except Exception:  # a refused global, or not a pickle at all
        return None
    if not (isinstance(call, tuple) and len(call) == 4):
        return None
    func, instance, args, kwargs = call
    if func not in SERVICE_FUNCTIONS or instance is not None or type(args) is not tuple or type(kwargs) is not dict:
        return None
    try:
        JobSerializer.dumps([func, None, list(args), kwargs])
    except (TypeError, ValueError):  # not plain JSON values
        return None
    return [func, None, list(args), kwargs]


def _fail(queue: Queue, job_id: str, reason: str) -> None:
    """Fail a job that will not run, off every list it waits on, its reason kept as RQ keeps one."""
    job = ServiceJob.fetch(job_id, connection=queue.connection)
    with queue.connection.pipeline() as pipe:
        queue.remove(job_id, pipeline=pipe)
        queue.scheduled_job_registry.remove(job_id, pipeline=pipe)
        queue.started_job_registry.remove_executions(job, pipeline=pipe)
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        job._handle_failure(reason, pipeline=pipe)
        pipe.execute()
