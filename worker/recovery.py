"""What a worker puts right in RQ's registries: jobs held as ``started`` that no one runs any
more, and the books put aside while the origin was paused.

Only workers do this, each for itself or for the worker its supervisor ran before it
(worker/rq_worker.py), or for the fleet when a probe finds the origin serving again
(worker/pause.py); the web side never does, so it lives here, beside the worker, while the
queue's contract with the web (enqueue, states, counts) stays in books/queue.py. It builds
RQ's keys the way that module does, with its ``key_around``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import islice

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, Execution, ExecutionRegistry
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.scripts import release_lock
from rq.utils import as_text, parse_composite_key

from books.jobs import BOOK, JobSerializer, job_queue
from books.progress import STATE, BookProgress
from books.queue import BATCH, JOB_ID_PREFIX, key_around
from books.settings import Settings
from books.status import BookStatus

# KEYS[1]: a worker's set of executions. ARGV[1]: JSON {job_key, execution_key, executions_key,
# started_key, queue_key ([prefix, suffix] around an id, a composite key or a queue name)};
# then the composite keys (job id:execution id) of the executions the worker is running now.
# Every other execution in the set is one the worker no longer runs: it is cleared, and its
# job, if still ``started``, goes back to the front of its queue (a book's attempt is spent
# only with its outcome: one stopped midway spent none). Returns the ids of the jobs put back.
_REQUEUE_STRANDED_SCRIPT = """
local config = cjson.decode(ARGV[1])
local function key(around, id) return around[1] .. id .. around[2] end
local running = {}
for i = 2, #ARGV do running[ARGV[i]] = true end
local requeued = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if not running[member] then
        local job_id, execution_id = string.match(member, '^(.*):([^:]*)$')
        redis.call('SREM', KEYS[1], member)
        redis.call('DEL', key(config.execution_key, member))
        redis.call('ZREM', key(config.executions_key, job_id), execution_id)
        local job_key = key(config.job_key, job_id)
        local origin = redis.call('HGET', job_key, 'origin')
        if origin and redis.call('ZREM', key(config.started_key, origin), member) == 1
                and redis.call('HGET', job_key, 'status') == 'started' then
            redis.call('HSET', job_key, 'status', 'queued')
            redis.call('LPUSH', key(config.queue_key, origin), job_id)
            requeued[#requeued + 1] = job_id
        end
    end
end
return requeued
"""


def scheduler_name(worker_name: str) -> str:
    """The name of a worker's scheduler, so that its locks can be found once the worker is dead."""
    return f"{worker_name}-scheduler"


class WorkerRecovery:
    """The jobs of the book queue that a worker takes back from RQ's registries."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.progress = BookProgress(redis, settings.key_prefix)
        self.rq_queue = job_queue(redis, BOOK.queue_name(settings))
        self._requeue_stranded = redis.register_script(_REQUEUE_STRANDED_SCRIPT)

    def release_paused(self) -> int:
        """Put every ``paused`` book's job back on the queue now (the origin serves pages again);
        returns how many. A job the scheduler moved meanwhile is left to it."""
        registry = self.rq_queue.scheduled_job_registry
        released = 0
        scheduled = (member.decode() for member, _score in self.redis.zscan_iter(registry.key, count=BATCH))
        while chunk := list(islice(scheduled, BATCH)):
            states = self.progress.values([id_.removeprefix(JOB_ID_PREFIX) for id_ in chunk], STATE)
            paused = [id_ for id_, state in zip(chunk, states, strict=True) if state == BookStatus.PAUSED.encode()]
            for job in Job.fetch_many(paused, connection=self.redis, serializer=JobSerializer):
                if job is None:
                    continue
                try:
                    registry.requeue(job)
                except InvalidJobOperation:
                    continue
                released += 1
        return released

    def requeue_stranded(self, worker_name: str, running: Iterable[str] = ()) -> list[str]:
        """Put back at the front of their queues the jobs that RQ's registries say worker
        ``worker_name`` runs, but for the executions in ``running`` (composite keys, "job
        id:execution id"); returns their ids. After a failover the new master may hold a job
        as started whose end its worker wrote to the old master, after the promotion: RQ
        would take it for abandoned only once its heartbeat expired (a minute or more), and
        charge it an attempt. Its worker knows better, and calls this on the new master."""
        marker = "__id__"
        config = {
            "job_key": key_around(Job.key_for(marker), marker),
            "execution_key": key_around(Execution(marker, marker, self.redis).key, f"{marker}:{marker}"),
            "executions_key": key_around(ExecutionRegistry(marker, self.redis).key, marker),
            "started_key": key_around(StartedJobRegistry(marker, connection=self.redis).key, marker),
            "queue_key": key_around(Queue(marker, connection=self.redis).key, marker),
        }
        executions_key = WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker_name)
        requeued = self._requeue_stranded(keys=[executions_key], args=[json.dumps(config), *running])
        return [id_.decode() for id_ in requeued]

    def settle_dead_worker(self, worker_name: str) -> list[str]:
        """Have RQ handle now, as abandoned, the jobs of a worker known to be dead (its work
        horse died with it), free its scheduler's locks, and unregister it; returns the jobs'
        ids. RQ's own cleanup would wait for their heartbeats to expire, a minute or more; it
        then retries each job after its retry interval, an attempt spent, or fails it, and so
        it does here. Its scheduler (``scheduler_name``) would hold the locks until it noticed,
        and the next worker would not schedule until its next maintenance."""
        executions_key = WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker_name)
        registries: dict[str, StartedJobRegistry] = {}
        settled = []
        for member in sorted(as_text(member) for member in self.redis.smembers(executions_key)):
            abandoned_id, _ = parse_composite_key(member)
            origin = self.redis.hget(Job.key_for(abandoned_id), "origin")
            if origin is None:
                continue
            registry = StartedJobRegistry(as_text(origin), connection=self.redis, serializer=JobSerializer)
            if self.redis.zadd(registry.key, {member: 0}, xx=True, ch=True):
                registries[registry.key] = registry
                settled.append(abandoned_id)
        for registry in registries.values():
            # Under RQ's maintenance lock, as its workers clean, so that a job is not retried
            # twice; a worker holding it now is cleaning, and takes these jobs (expired) too.
            queue = registry.get_queue()
            if queue.acquire_maintenance_lock():
                try:
                    registry.cleanup()
                finally:
                    queue.release_maintenance_lock()
        dead = Worker.find_by_key(
            Worker.redis_worker_namespace_prefix + worker_name, connection=self.redis, serializer=JobSerializer
        )
        if dead is not None:
            for name in dead.queue_names():
                release_lock(self.redis, RQScheduler.get_locking_key(name), scheduler_name(worker_name))
            dead.register_death()
        return settled
