"""Enqueue many books at once with deduplication, and tell what state a book is in.

One job per book, job id ``book-<book_id>``. RQ's own ``unique=True`` refuses a job
id whose hash still exists, and a failed job's hash lives for ``failure_ttl``, so a
book whose last attempt failed could not be sent again; and ``enqueue_many`` checks
nothing. So a Lua script decides atomically, for a whole batch, which books need a
job: none while one is queued, running or waiting for a retry (or while another
request is enqueueing it), none while a fresh record or a fresh "not found" exists.
The books it claims are then enqueued with ``enqueue_many`` in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Retry
from rq.job import Job

from app.config import Settings
from app.links import BookId, job_id
from app.store import FINAL_FAILURES, BookStore

TASK = "worker.tasks.parse_book"
CLAIM_SECONDS = 60
BATCH = 1000

# ARGV: job key prefix, status key prefix, claim key prefix, fresh-since (epoch s),
#       refresh (1/0), claim seconds, then the book ids. Keys are built inside, as RQ's
#       own scripts do, so one call covers a thousand books.
_CLAIM_SCRIPT = """
local active = {queued=true, started=true, scheduled=true, deferred=true,
                rate_limited=true, ready_to_enqueue=true}
local fresh_since = tonumber(ARGV[4])
local outcomes = {}
for i = 7, #ARGV do
    local id = ARGV[i]
    local job_status = redis.call('HGET', ARGV[1] .. 'book-' .. id, 'status')
    local outcome
    if (job_status and active[job_status]) or redis.call('EXISTS', ARGV[3] .. id) == 1 then
        outcome = 'already_queued'
    elseif ARGV[5] == '0' then
        local last = redis.call('HMGET', ARGV[2] .. id, 'stored_at', 'state', 'at')
        if last[1] and tonumber(last[1]) >= fresh_since then
            outcome = 'stored'
        elseif last[2] == 'not_found' and tonumber(last[3]) >= fresh_since then
            outcome = 'not_found'
        end
    end
    if not outcome then
        redis.call('SET', ARGV[3] .. id, '1', 'EX', ARGV[6])
        outcome = job_status and 'requeued' or 'queued'
    end
    outcomes[#outcomes + 1] = outcome
end
return outcomes
"""


@dataclass(frozen=True)
class BookState:
    """What a client is told about a book that has no record to show."""

    status: str  # queued | running | retrying | not_found | blocked | failed | unknown
    reason: str | None = None
    attempts: int | None = None
    last_attempt_at: float | None = None


class BookJobs:
    """The book queue: batch enqueue with dedup, and each book's state."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.store = BookStore(redis, settings.key_prefix)
        self.queue = Queue(settings.queue_name, connection=redis)
        self._claim = redis.register_script(_CLAIM_SCRIPT)

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
        fresh_since = time.time() - self.settings.refresh_after
        raw = self._claim(args=[
            Job.redis_job_namespace_prefix, f"{self.settings.key_prefix}:status:",
            f"{self.settings.key_prefix}:claim:", fresh_since, int(refresh), CLAIM_SECONDS, *book_ids])
        outcomes = dict(zip(book_ids, (value.decode() for value in raw), strict=True))
        claimed = [book_id for book_id, outcome in outcomes.items() if outcome in ("queued", "requeued")]
        if claimed:
            with self.redis.pipeline() as pipe:
                for book_id in claimed:
                    if outcomes[book_id] == "requeued":
                        self._forget_old_job(job_id(book_id), pipe)
                    pipe.hset(self.store.status_key(book_id), "attempts", 0)
                self.queue.enqueue_many([self._job_data(book_id) for book_id in claimed], pipeline=pipe)
                pipe.delete(*(self.store.claim_key(book_id) for book_id in claimed))
                pipe.execute()
        return {book_id: "queued" if outcome == "requeued" else outcome for book_id, outcome in outcomes.items()}

    def _job_data(self, book_id: BookId):
        settings = self.settings
        retry = Retry(max=settings.retry_max, interval=list(settings.retry_intervals)) if settings.retry_max else None
        return Queue.prepare_data(
            TASK, args=(book_id,), job_id=job_id(book_id), description=f"parse book {book_id}",
            timeout=settings.job_timeout, result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl,
            retry=retry,
        )

    def _forget_old_job(self, old_job_id: str, pipe) -> None:
        """Drop a finished or failed job of the same id, so the new one starts clean."""
        pipe.delete(Job.key_for(old_job_id))
        for registry in (self.queue.failed_job_registry, self.queue.finished_job_registry,
                         self.queue.canceled_job_registry):
            pipe.zrem(registry.key, old_job_id)

    def state(self, book_id: BookId) -> BookState:
        """Where a book without a record stands: in progress, failed, or unknown."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(Job.key_for(job_id(book_id)), "status")
            pipe.exists(self.store.claim_key(book_id))
            pipe.hgetall(self.store.status_key(book_id))
            job_status, claimed, last = pipe.execute()
        job_status = job_status.decode() if job_status else None
        last = {key.decode(): value.decode() for key, value in last.items()}
        details = {
            "reason": last.get("reason") or None,
            "attempts": int(last["attempts"]) if last.get("attempts") else None,
            "last_attempt_at": float(last["at"]) if last.get("at") else None,
        }
        if job_status in ("queued", "deferred", "rate_limited", "ready_to_enqueue") or claimed:
            return BookState("queued", **details)
        if job_status == "started":
            return BookState("running", **details)
        if job_status == "scheduled":
            return BookState("retrying", **details)
        if last.get("state") in FINAL_FAILURES:
            return BookState(last["state"], **details)
        if job_status in ("failed", "stopped", "canceled"):
            details["reason"] = details["reason"] or "the job ended without a result (its worker stopped)"
            return BookState("failed", **details)
        return BookState("unknown")
