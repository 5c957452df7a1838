"""The book queue: RQ's contract in one place.

One job per book, job id ``book-<book_id>``, on the queue ``QUEUE_NAME``. This is the only
module that knows how RQ lays out its keys; everything else asks it (the worker's recovery of
jobs no one runs, worker/recovery.py, with ``key_around``).

RQ's own ``unique=True`` refuses a job id whose hash still exists, and a failed job's hash
lives for ``failure_ttl``, so a book whose last attempt failed could not be sent again;
``enqueue_many`` checks nothing, and builds each job in Python, one Redis command per field.
So one Lua script does it all for a thousand books at a time, atomically: for each book it
decides whether a job is needed (none while one is active, none while a fresh record or a
fresh "not found" exists), and if so clears what is left of the book's finished job (what
``Job.delete`` clears) and writes the job hash and pushes it on the queue. The job hash is
RQ's own: its fields come from ``Job.to_dict()`` of a job RQ builds for the batch, and each
book's ``data`` and description are that job's with the book's id in place of a marker (the
JSON call of books/jobs.py, left uncompressed, which RQ reads as it reads a compressed one),
so workers run these jobs like any other (``tests/test_queue_contract.py`` holds RQ to that).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, cast

from redis import Redis
from redis.exceptions import NoScriptError
from rq import Queue, Worker
from rq.executions import ExecutionRegistry
from rq.job import Job, JobStatus
from rq.results import Result
from rq.utils import now, utcparse

from books.jobs import BOOK, job_queue
from books.links import BookId
from books.origin import OriginSnapshot, origin_key
from books.progress import AT, ATTEMPTS, NEXT_ATTEMPT_AT, REASON, STATE
from books.progress import LUA as PROGRESS_LUA
from books.record import GOODREADS
from books.settings import Settings
from books.status import FINAL_FAILURES, BookState, BookStatus, Outcome
from books.store import BookStore, RecordLimits

JOB_ID_PREFIX = BOOK.job_id("")
BATCH = 1000
# Stands for the book's id in the job RQ builds for a batch; each book's job is that one with
# its id in place of the marker (book ids are digits: the same in JSON and in a description).
BOOK_ID_MARKER = BookId("__book_id__")

# The enqueue script's answers, as they come back from Redis.
_OUTCOMES = {outcome.encode(): outcome for outcome in Outcome}
# Every status RQ has, but those of a job that is over: a status a later RQ adds counts as
# active, so a book is never queued twice because of a status this code does not know.
TERMINAL_JOB_STATUSES = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})
ACTIVE_JOB_STATUSES = tuple(sorted(status.value for status in JobStatus if status not in TERMINAL_JOB_STATUSES))
# What a job put aside with RQ's scheduler may be waiting for besides a retry.
AWAITING = (BookStatus.PAUSED, BookStatus.QUEUED)

# KEYS: the queue, the set of queues, the lower-priority queue a waiting job is moved up from
# (the queue itself when there is none), then the failed / finished / canceled registries of
# every book queue (a book's last job may have run on either).
# ARGV[1]: JSON {job_id_prefix, status_key_prefix, fresh_since (epoch s), refresh (bool),
#          queue (name), moved_up_from (that lower queue's name), active (job statuses),
#          job_keys ([prefix, suffix] around a job id: every key of a job),
#          data and description ([prefix, suffix] around the book id: a book's job data and
#          description)};
# ARGV[2]: n, the number of job template values, then those n field/value values;
# then the book ids. Returns one outcome per book.
# Book keys are built inside, as RQ's own scripts build theirs.
_ENQUEUE_SCRIPT = (
    PROGRESS_LUA
    + """
local config = cjson.decode(ARGV[1])
local active = {}
for _, status in ipairs(config.active) do active[status] = true end
local template_end = 2 + tonumber(ARGV[2])
local template = {}
for i = 3, template_end do template[#template + 1] = ARGV[i] end
local id_prefix, status_prefix = config.job_id_prefix, config.status_key_prefix
local job_key_prefix, job_key_suffix = config.job_keys[1][1], config.job_keys[1][2]
local data, description = config.data, config.description
local outcomes = {}
local pushed = {}
for i = template_end + 1, #ARGV do
    local id = ARGV[i]
    local job_id = id_prefix .. id
    local job_key = job_key_prefix .. job_id .. job_key_suffix
    local status_key = status_prefix .. id
    local job_status = redis.call('HGET', job_key, 'status')
    local outcome
    if job_status and active[job_status] then
        outcome = 'already_queued'
        -- a book waiting on the refresh queue that a user now asks for moves to the user's queue
        if KEYS[3] ~= KEYS[1] and job_status == 'queued'
                and redis.call('HGET', job_key, 'origin') == config.moved_up_from
                and redis.call('LREM', KEYS[3], 1, job_id) == 1 then
            pushed[#pushed + 1] = job_id
            redis.call('HSET', job_key, 'origin', config.queue)
        end
    end
    local last
    if not outcome then
        last = progress.last(status_key)
        if not config.refresh and last[1] and tonumber(last[1]) >= config.fresh_since then
            outcome = 'stored'
        elseif not config.refresh and last[2] == 'not_found' and tonumber(last[3]) >= config.fresh_since then
            outcome = 'not_found'
        end
    end
    if not outcome then
        if job_status then  -- a job of the same id that is over: clear it as Job.delete does
            local keys = {}
            for _, around in ipairs(config.job_keys) do keys[#keys + 1] = around[1] .. job_id .. around[2] end
            redis.call('DEL', unpack(keys))
            for k = 4, #KEYS do redis.call('ZREM', KEYS[k], job_id) end
        end
        redis.call('HSET', job_key, 'data', data[1] .. id .. data[2],
                   'description', description[1] .. id .. description[2], 'status', 'queued', unpack(template))
        pushed[#pushed + 1] = job_id
        -- a book that ran before starts afresh; a new one has no status hash until it runs
        if last[2] or last[4] then progress.queued(status_key) end
        outcome = 'queued'
    end
    outcomes[#outcomes + 1] = outcome
end
if #pushed > 0 then
    redis.call('RPUSH', KEYS[1], unpack(pushed))
    redis.call('SADD', KEYS[2], KEYS[1])
end
return outcomes
"""
)

# KEYS[1]: the origin's hash. ARGV[1..3]: the prefixes of a job's hash, a book's status hash and
# its record; then book ids. Returns the origin's state, then, per book, its job's status, its
# last outcome's state, whether it has a record (what ``_state`` reads to tell a book's status)
# and its record's source, in one round trip for many books.
_STATUS_FIELDS_SCRIPT = (
    PROGRESS_LUA
    + """
local fields = {redis.call('HGET', KEYS[1], 'state') or ''}
for i = 4, #ARGV do
    local id = ARGV[i]
    fields[#fields + 1] = redis.call('HGET', ARGV[1] .. id, 'status') or ''
    fields[#fields + 1] = progress.state(ARGV[2] .. id)
    fields[#fields + 1] = redis.call('EXISTS', ARGV[3] .. id)
    fields[#fields + 1] = progress.source(ARGV[2] .. id)
end
return fields
"""
)


def job_id(book_id: BookId) -> str:
    """RQ job id of a book's parse job (RQ allows letters, digits, - and _)."""
    return JOB_ID_PREFIX + book_id


def job_keys(connection: Redis) -> list[tuple[str, str]]:
    """Every key RQ keeps for one job, as (prefix, suffix) around its id; the job hash first."""
    marker = "__job_id__"
    job = Job(marker, connection=connection)
    keys = [
        job.key,
        job.dependents_key,
        job.dependencies_key,
        Result.get_key(marker),
        ExecutionRegistry(marker, connection=connection).key,
    ]
    return [key_around(key, marker) for key in keys]


def key_around(key: str, marker: str) -> tuple[str, str]:
    """A key RQ built for ``marker`` as (prefix, suffix) around it: how the Lua scripts that
    touch RQ's keys, here and in worker/recovery.py, build them for any id."""
    prefix, _, suffix = key.partition(marker)
    return prefix, suffix


@dataclass(frozen=True)
class JobCounts:
    """The queue's jobs by RQ state, for /metrics."""

    queued: int
    started: int
    scheduled: int
    finished: int
    failed: int


class QueueFull(Exception):
    """Queueing the books would take the queue past ``MAX_QUEUED_BOOKS``: none was queued."""

    def __init__(self, queued: int, adding: int, bound: int) -> None:
        super().__init__(f"{queued} books queued, {adding} more asked for, at most {bound} allowed")
        self.queued = queued
        self.adding = adding
        self.bound = bound


class NotReplicated(Exception):
    """Fewer replicas than ``REDIS_MIN_REPLICAS`` confirmed the writes in time: a failover now
    could lose them."""


class BookQueue:
    """The book queue: batch enqueue with dedup, each book's state, the queue's counts."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.store = BookStore(redis, settings.key_prefix, RecordLimits.from_settings(settings))
        self.rq_queue = job_queue(redis, BOOK.queue_name(settings))
        self.refresh_queue = job_queue(redis, BOOK.queue_name(settings, low_priority=True))
        self._enqueue = redis.register_script(_ENQUEUE_SCRIPT)
        self._status_fields = redis.register_script(_STATUS_FIELDS_SCRIPT)
        self._job_keys = job_keys(redis)

    @property
    def name(self) -> str:
        return self.rq_queue.name

    def enqueue_books(
        self, book_ids: Iterable[BookId], refresh: bool = False, low_priority: bool = False
    ) -> dict[BookId, Outcome]:
        """Queue a job for each book that needs one; say for each what happened.

        Outcomes: ``queued``, ``already_queued``, ``stored`` (a fresh record exists),
        ``not_found`` (Goodreads recently said it has no such book). ``low_priority`` puts
        the jobs on the refresh queue; a book waiting there that is asked for again without it
        moves to the book queue. Either way a book has one job at a time.
        """
        unique = list(dict.fromkeys(book_ids))
        joined = "".join(unique)
        if joined and not (joined.isascii() and joined.isdigit()):
            raise ValueError("book ids are digits")  # they stand in the job's JSON unquoted
        if not low_priority:  # refresh rounds are bounded by REFRESH_BATCH instead
            self._check_room(len(unique))
        keys, leading_args = self._enqueue_script_call(refresh, self.refresh_queue if low_priority else self.rq_queue)
        batches = [unique[start : start + BATCH] for start in range(0, len(unique), BATCH)]
        replies = self._run_enqueue_script(keys, [[*leading_args, *batch] for batch in batches])
        return {
            book_id: _OUTCOMES[value]
            for batch, raw in zip(batches, replies, strict=True)
            for book_id, value in zip(batch, raw, strict=True)
        }

    def confirm_replicated(self) -> None:
        """Wait until ``REDIS_MIN_REPLICAS`` replicas hold what this client has written (Redis's
        ``WAIT``, at most half of ``REDIS_SOCKET_TIMEOUT``, so that the call itself does not
        time out); raise ``NotReplicated`` if they do not.
        Replication is asynchronous: without this, a write a master accepted just before a
        failover is lost when it is demoted, though the client was told it was done."""
        wanted = self.settings.redis_min_replicas
        if wanted and int(self.redis.wait(wanted, int(self.settings.redis_socket_timeout * 500))) < wanted:
            raise NotReplicated()

    def _check_room(self, adding: int) -> None:
        """Refuse, before queueing any, books that could take the waiting jobs past
        ``MAX_QUEUED_BOOKS`` (each book counts, even one that turns out stored or already
        queued). Waiting are the books on the queue and those put aside in RQ's scheduled
        set (paused, retrying, waiting for a slot) or deferred set: three counts, one round
        trip. Concurrent requests can pass it together: the bound is soft by their size."""
        bound = self.settings.max_queued_books
        if not bound:
            return
        queue = self.rq_queue
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(queue.key)
            pipe.zcard(queue.scheduled_job_registry.key)
            pipe.zcard(queue.deferred_job_registry.key)
            queued = sum(pipe.execute())
        if queued + adding > bound:
            raise QueueFull(queued, adding, bound)

    def _run_enqueue_script(self, keys: list[str], calls: list[list[Any]]) -> list[list[bytes]]:
        """One run of the enqueue script per call's arguments, each atomic, all sent in one round
        trip (redis-py's pipelined scripts would first ask whether the script is loaded). A
        Redis without the script (restarted, a new master) runs none of them: it is loaded,
        and they are sent again."""
        try:
            return self._send_enqueue_calls(keys, calls)
        except NoScriptError:
            self.redis.script_load(_ENQUEUE_SCRIPT)
            return self._send_enqueue_calls(keys, calls)

    def _send_enqueue_calls(self, keys: list[str], calls: list[list[Any]]) -> list[list[bytes]]:
        with self.redis.pipeline(transaction=False) as pipe:
            for args in calls:
                pipe.evalsha(self._enqueue.sha, len(keys), *keys, *args)
            return cast(list[list[bytes]], pipe.execute())

    def _enqueue_script_call(self, refresh: bool, queue: Queue) -> tuple[list[str], list[Any]]:
        """The enqueue script's keys, and its arguments before the book ids, for ``queue``."""
        job = self.build_job(BOOK_ID_MARKER, queue)  # each book's differs only by its id
        template = [  # RQ reads a field it writes empty as one that is not there
            value
            for field, value in job.to_dict().items()
            if field not in ("data", "description", "status") and value != ""
            for value in (field, value)
        ]
        moved_up_from = self.refresh_queue if queue is self.rq_queue else queue
        config = {
            "job_id_prefix": JOB_ID_PREFIX,
            "status_key_prefix": self.store.progress.key_prefix,
            "fresh_since": time.time() - self.settings.refresh_after,
            "refresh": refresh,
            "queue": queue.name,
            "moved_up_from": moved_up_from.name,
            "active": ACTIVE_JOB_STATUSES,
            "job_keys": self._job_keys,
            "data": key_around(job.data.decode(), BOOK_ID_MARKER),
            "description": key_around(describe(BOOK_ID_MARKER), BOOK_ID_MARKER),
        }
        keys = [
            queue.key,
            queue.redis_queues_keys,
            moved_up_from.key,
            *(
                registry.key
                for book_queue in (self.rq_queue, self.refresh_queue)
                for registry in (
                    book_queue.failed_job_registry,
                    book_queue.finished_job_registry,
                    book_queue.canceled_job_registry,
                )
            ),
        ]
        return keys, [json.dumps(config), len(template), *template]

    def job_options(self, book_id: BookId) -> dict[str, Any]:
        """The arguments RQ builds a book's job from (``Queue.create_job``, ``Queue.prepare_data``)."""
        return {
            "args": (book_id,),
            "job_id": job_id(book_id),
            "description": describe(book_id),
            **BOOK.options(self.settings),
        }

    def build_job(self, book_id: BookId, queue: Queue | None = None) -> Job:
        """A book's job as RQ builds it for the book queue, or the one given (not saved)."""
        queue = queue or self.rq_queue
        job = queue.create_job(BOOK.func, **self.job_options(book_id))
        job.origin = queue.name
        job.enqueued_at = now()
        return job

    def state(self, book_id: BookId) -> BookState:
        """Where a book without a record stands: in progress, failed, or unknown."""
        return self.states([book_id], check_records=False)[book_id]

    def states(self, book_ids: Sequence[BookId], check_records: bool = True) -> dict[BookId, BookState]:
        """The state of many books in one round trip; ``stored`` where a record exists
        and no job for the book is in progress."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(origin_key(self.settings))
            for book_id in book_ids:
                pipe.hget(Job.key_for(job_id(book_id)), "status")
                pipe.hgetall(self.store.progress.key(book_id))
                if check_records:
                    pipe.exists(self.store.record_key(book_id))
            origin_hash, *replies = pipe.execute()
        origin = OriginSnapshot.from_hash(origin_hash)
        step = 3 if check_records else 2
        return {
            book_id: _state(
                replies[n * step], replies[n * step + 1], replies[n * step + 2] if check_records else 0, origin
            )
            for n, book_id in enumerate(book_ids)
        }

    def statuses(self, book_ids: Sequence[BookId]) -> list[tuple[BookStatus, str | None]]:
        """The status of each book, as ``states`` tells it, and its record's source (None without a
        record), read for many books at a third of its cost (no reason, attempts or times): for
        the counts of large batches."""
        prefixes = [Job.key_for(job_id(BookId(""))), self.store.progress.key_prefix, self.store.record_key("")]
        origin_state, *fields = self._status_fields(keys=[origin_key(self.settings)], args=[*prefixes, *book_ids])
        return [
            (
                _status(*fields[n : n + 3], origin_state),
                (fields[n + 3].decode() or GOODREADS) if fields[n + 2] else None,
            )
            for n in range(0, len(fields), 4)
        ]

    def job_counts(self) -> JobCounts:
        """Jobs waiting, running, waiting for a retry, and those RQ still keeps as finished or failed."""
        queue = self.rq_queue
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(queue.key)
            for registry in (
                queue.started_job_registry,
                queue.scheduled_job_registry,
                queue.finished_job_registry,
                queue.failed_job_registry,
            ):
                pipe.zcard(registry.key)
            return JobCounts(*pipe.execute())

    def worker_count(self) -> int:
        """Workers registered on this queue (a killed worker stays registered for minutes)."""
        return Worker.count(connection=self.redis, queue=self.rq_queue)

    def live_worker_count(self) -> int:
        """Workers on this queue heard from within ``WORKER_TTL`` seconds: a live worker
        heartbeats at least every ``WORKER_TTL`` - 15 s, idle or busy, so one that was
        killed drops out of the count within ``WORKER_TTL`` s."""
        with self.redis.pipeline(transaction=False) as pipe:
            for key in Worker.all_keys(connection=self.redis, queue=self.rq_queue):
                pipe.hget(key, "last_heartbeat")
            heartbeats = pipe.execute()
        fresh_since = now() - timedelta(seconds=self.settings.worker_ttl)
        return sum(1 for beat in heartbeats if beat is not None and utcparse(beat.decode()) >= fresh_since)


def describe(book_id: BookId) -> str:
    """The job's description, as the dashboard shows it."""
    return f"parse book {book_id}"


@cache
def _status(job_status: bytes, state: bytes, has_record: int, origin_state: bytes) -> BookStatus:
    origin = OriginSnapshot.from_hash({b"state": origin_state})
    return _state(job_status or None, {STATE.encode(): state} if state else {}, has_record, origin).status


def _state(
    job_status: bytes | None, last: dict[bytes, bytes], has_record: int = 0, origin: OriginSnapshot | None = None
) -> BookState:
    """A book's state from its job's status, its status hash and whether it has a record. While
    the origin is ``paused``, a book that waits for a worker (in the queue, or put aside for
    the origin or a request slot) waits for the origin: ``paused`` until the next probe."""
    job = job_status.decode() if job_status else None
    outcome = {key.decode(): value.decode() for key, value in last.items()}
    reason = outcome.get(REASON) or None
    attempts = int(outcome[ATTEMPTS]) if outcome.get(ATTEMPTS) else None
    last_attempt_at = float(outcome[AT]) if outcome.get(AT) else None
    next_attempt_at = float(outcome[NEXT_ATTEMPT_AT]) if outcome.get(NEXT_ATTEMPT_AT) else None
    if job == JobStatus.STARTED:
        return BookState(BookStatus.RUNNING, reason, attempts, last_attempt_at)
    # Put aside: for the origin (paused), for a request slot (queued), or for a retry.
    waiting = BookStatus(outcome[STATE]) if outcome.get(STATE) in AWAITING else BookStatus.RETRYING
    scheduled = job == JobStatus.SCHEDULED
    if origin and origin.paused and job in ACTIVE_JOB_STATUSES and not (scheduled and waiting == BookStatus.RETRYING):
        # Tried at the next probe (or, parked, when it gives up waiting, if that comes first).
        wake = min(filter(None, (origin.next_probe_at, next_attempt_at if scheduled else None)), default=None)
        return BookState(BookStatus.PAUSED, origin.describe(), attempts, last_attempt_at, wake)
    if scheduled:
        return BookState(waiting, reason, attempts, last_attempt_at, next_attempt_at)
    if job in ACTIVE_JOB_STATUSES:
        # A pause's reason is over once the origin runs again (its book was released).
        return BookState(BookStatus.QUEUED, None if waiting == BookStatus.PAUSED else reason, attempts, last_attempt_at)
    if has_record or outcome.get(STATE) == BookStatus.STORED:  # (or its record is being written now)
        return BookState(BookStatus.STORED, None, attempts, last_attempt_at)
    if outcome.get(STATE) in FINAL_FAILURES:
        return BookState(BookStatus(outcome[STATE]), reason, attempts, last_attempt_at)
    if job in TERMINAL_JOB_STATUSES and job != JobStatus.FINISHED:
        return BookState(
            BookStatus.FAILED,
            reason or "the job ended without a result (its worker stopped)",
            attempts,
            last_attempt_at,
        )
    return BookState(BookStatus.UNKNOWN)
