"""Enqueue many books at once with deduplication, and tell what state a book is in.

One job per book, job id ``book-<book_id>``. RQ's own ``unique=True`` refuses a job
id whose hash still exists, and a failed job's hash lives for ``failure_ttl``, so a
book whose last attempt failed could not be sent again; ``enqueue_many`` checks
nothing, and builds each job in Python, one Redis command per field.

So one Lua script does it all for a thousand books at a time, atomically: for each
book it decides whether a job is needed (none while one is queued, running or
waiting for a retry, none while a fresh record or a fresh "not found" exists), and
if so writes the job hash and pushes it on the queue. The job hash is RQ's own:
its fields come from ``Job.to_dict()`` of a job RQ builds for the batch, and each
book's ``data`` from RQ's serializer, so workers run these jobs like any other.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Retry
from rq.job import Job
from rq.utils import now

from app.config import Settings
from app.links import BookId, job_id
from app.store import FINAL_FAILURES, BookStore

TASK = "worker.tasks.parse_book"
BATCH = 1000
ACTIVE_JOB_STATUSES = ("queued", "started", "scheduled", "deferred", "rate_limited", "ready_to_enqueue")

# KEYS: queue, set of queues, failed / finished / canceled registries of the queue.
# ARGV: job key prefix, status key prefix, fresh-since (epoch s), refresh (1/0),
#       n = number of template values, the n template field/value values, then
#       (book id, job data, description) for each book.
# Returns one outcome per book. Book keys are built inside, as RQ's own scripts do.
_ENQUEUE_SCRIPT = """
local active = {}
for _, status in ipairs({ACTIVE_STATUSES}) do active[status] = true end
local fresh_since = tonumber(ARGV[3])
local template_end = 5 + tonumber(ARGV[5])
local template = {}
for i = 6, template_end do template[#template + 1] = ARGV[i] end
local outcomes = {}
local queued = 0
for i = template_end + 1, #ARGV, 3 do
    local id, data, description = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local job_id = 'book-' .. id
    local job_key = ARGV[1] .. job_id
    local status_key = ARGV[2] .. id
    local job_status = redis.call('HGET', job_key, 'status')
    local outcome
    if job_status and active[job_status] then
        outcome = 'already_queued'
    elseif ARGV[4] == '0' then
        local last = redis.call('HMGET', status_key, 'stored_at', 'state', 'at')
        if last[1] and tonumber(last[1]) >= fresh_since then
            outcome = 'stored'
        elseif last[2] == 'not_found' and tonumber(last[3]) >= fresh_since then
            outcome = 'not_found'
        end
    end
    if not outcome then
        if job_status then  -- a finished or failed job of the same id: start clean
            redis.call('DEL', job_key)
            for k = 3, 5 do redis.call('ZREM', KEYS[k], job_id) end
        end
        redis.call('HSET', job_key, 'data', data, 'description', description, 'status', 'queued',
                   unpack(template))
        redis.call('RPUSH', KEYS[1], job_id)
        redis.call('HSET', status_key, 'attempts', 0)
        queued = queued + 1
        outcome = 'queued'
    end
    outcomes[#outcomes + 1] = outcome
end
if queued > 0 then redis.call('SADD', KEYS[2], KEYS[1]) end
return outcomes
""".replace("ACTIVE_STATUSES", ", ".join(f"'{status}'" for status in ACTIVE_JOB_STATUSES))


@dataclass(frozen=True)
class BookState:
    """Where a book stands, as a client is told."""

    status: str  # queued | running | retrying | stored | not_found | blocked | failed | unknown
    reason: str | None = None
    attempts: int | None = None
    last_attempt_at: float | None = None


def _compress(data: bytes) -> bytes:
    """A zlib stream, as RQ stores a job's data, made with a 512-byte window: the data is a
    pickle of some sixty bytes, and setting up ``zlib.compress``'s default 32 KB window costs
    more than the rest of a book's enqueue; RQ reads either stream alike."""
    compressor = zlib.compressobj(wbits=9, memLevel=1)
    return compressor.compress(data) + compressor.flush()


class BookJobs:
    """The book queue: batch enqueue with dedup, and each book's state."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.store = BookStore(redis, settings.key_prefix)
        self.queue = Queue(settings.queue_name, connection=redis)
        self._enqueue = redis.register_script(_ENQUEUE_SCRIPT)

    def enqueue_books(self, book_ids: Iterable[BookId], refresh: bool = False) -> dict[BookId, str]:
        """Queue a job for each book that needs one; say for each what happened.

        Outcomes: ``queued``, ``already_queued``, ``stored`` (a fresh record exists),
        ``not_found`` (Goodreads recently said it has no such book).
        """
        unique = list(dict.fromkeys(book_ids))
        outcomes: dict[BookId, str] = {}
        for start in range(0, len(unique), BATCH):
            outcomes.update(self._enqueue_batch(unique[start:start + BATCH], refresh))
        return outcomes

    def _enqueue_batch(self, book_ids: list[BookId], refresh: bool) -> dict[BookId, str]:
        job = self._template_job()
        template = [value for field, value in job.to_dict().items() if field not in ("data", "description", "status")
                    for value in (field, value)]
        books = []
        for book_id in book_ids:
            job.args = (book_id,)
            books += [book_id, _compress(job.data), f"parse book {book_id}"]
        queue = self.queue
        raw = self._enqueue(
            keys=[queue.key, queue.redis_queues_keys, queue.failed_job_registry.key,
                  queue.finished_job_registry.key, queue.canceled_job_registry.key],
            args=[Job.redis_job_namespace_prefix, f"{self.settings.key_prefix}:status:",
                  time.time() - self.settings.refresh_after, int(refresh), len(template), *template, *books])
        return dict(zip(book_ids, (value.decode() for value in raw), strict=True))

    def _template_job(self) -> Job:
        """A job as RQ builds it for this queue; each book changes only its args."""
        settings = self.settings
        retry = Retry(max=settings.retry_max, interval=list(settings.retry_intervals)) if settings.retry_max else None
        job = self.queue.create_job(TASK, args=("0",), job_id=job_id(BookId("0")), timeout=settings.job_timeout,
                                    result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl, retry=retry)
        job.origin = self.queue.name
        job.enqueued_at = now()
        return job

    def state(self, book_id: BookId) -> BookState:
        """Where a book without a record stands: in progress, failed, or unknown."""
        return self.states([book_id], check_records=False)[book_id]

    def states(self, book_ids: list[BookId], check_records: bool = True) -> dict[BookId, BookState]:
        """The state of many books in one round trip; ``stored`` where a record exists
        and no job for the book is in progress."""
        with self.redis.pipeline(transaction=False) as pipe:
            for book_id in book_ids:
                pipe.hget(Job.key_for(job_id(book_id)), "status")
                pipe.hgetall(self.store.status_key(book_id))
                if check_records:
                    pipe.exists(self.store.record_key(book_id))
            replies = pipe.execute()
        step = 3 if check_records else 2
        return {book_id: _state(*replies[n * step:n * step + step]) for n, book_id in enumerate(book_ids)}


def _state(job_status: bytes | None, last: dict[bytes, bytes], has_record: int = 0) -> BookState:
    job = job_status.decode() if job_status else None
    outcome = {key.decode(): value.decode() for key, value in last.items()}
    details = {
        "reason": outcome.get("reason") or None,
        "attempts": int(outcome["attempts"]) if outcome.get("attempts") else None,
        "last_attempt_at": float(outcome["at"]) if outcome.get("at") else None,
    }
    if job == "started":
        return BookState("running", **details)
    if job == "scheduled":
        return BookState("retrying", **details)
    if job in ACTIVE_JOB_STATUSES:
        return BookState("queued", **details)
    if has_record:
        return BookState("stored", attempts=details["attempts"], last_attempt_at=details["last_attempt_at"])
    if outcome.get("state") in FINAL_FAILURES:
        return BookState(outcome["state"], **details)
    if job in ("failed", "stopped", "canceled"):
        details["reason"] = details["reason"] or "the job ended without a result (its worker stopped)"
        return BookState("failed", **details)
    return BookState("unknown")
