"""The enqueue script against RQ itself: it writes the job RQ writes (as JSON), RQ runs it, and
a book whose job is over is queued again as cleanly as ``Job.delete`` would leave it."""

from __future__ import annotations

import json
import zlib

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.results import Result
from rq.utils import utcparse

from books.jobs import BOOK
from books.links import BookId
from books.queue import ACTIVE_JOB_STATUSES, BookQueue
from books.status import Outcome
from worker.jobs import ServiceJob

TIMESTAMPS = {"created_at", "enqueued_at"}


def rq_enqueue_many(queue: BookQueue, book_id: BookId) -> None:
    """The same job, enqueued by RQ's own pipelined ``enqueue_many``."""
    queue.rq_queue.enqueue_many([Queue.prepare_data(BOOK.func, **queue.job_options(book_id))])


def snapshot(redis) -> dict[bytes, object]:
    """Every key but the workers' own, with its value (hashes as dicts; lists, sets, sorted sets
    and streams as their members)."""
    readers = {
        b"hash": redis.hgetall,
        b"list": lambda key: redis.lrange(key, 0, -1),
        b"set": redis.smembers,
        b"zset": lambda key: redis.zrange(key, 0, -1),
        b"string": redis.get,
        b"stream": lambda key: [fields for _id, fields in redis.xrange(key)],
    }
    keys = [key for key in sorted(redis.keys("*")) if not key.startswith(b"rq:worker")]
    return {key: readers[redis.type(key)](key) for key in keys}


def test_the_script_writes_the_job_hash_enqueue_many_writes(redis, settings):
    queue = BookQueue(redis, settings)
    assert queue.enqueue_books([BookId("7")]) == {"7": Outcome.QUEUED}
    ours = redis.hgetall(Job.key_for("book-7"))
    ours_queue = redis.lrange(queue.rq_queue.key, 0, -1)
    redis.flushdb()

    rq_enqueue_many(queue, BookId("7"))
    theirs = redis.hgetall(Job.key_for("book-7"))
    assert redis.lrange(queue.rq_queue.key, 0, -1) == ours_queue == [b"book-7"]
    assert redis.smembers(Queue.redis_queues_keys) == {queue.rq_queue.key.encode()}

    # The fields RQ writes empty are left out: RQ reads a field that is not there as an empty one.
    assert sorted(ours) == sorted(field for field, value in theirs.items() if value != b"")
    for field in ours:
        name = field.decode()
        if name == "data":  # the same JSON call, left uncompressed (RQ reads either)
            assert ours[field] == zlib.decompress(theirs[field])
            assert json.loads(ours[field]) == [BOOK.func, None, ["7"], {}]
        elif name in TIMESTAMPS:
            assert abs((utcparse(ours[field].decode()) - utcparse(theirs[field].decode())).total_seconds()) < 60
        else:
            assert ours[field] == theirs[field], name
    read_ours, read_theirs = (job_as_rq_reads_it(redis, fields) for fields in (ours, theirs))
    assert read_ours == read_theirs


def job_as_rq_reads_it(redis, fields: dict[bytes, bytes]) -> dict[str, object]:
    """Every attribute RQ restores from a job hash, but its timestamps."""
    job = ServiceJob("book-7", connection=redis)
    job.restore(fields)
    restored = {name: value for name, value in vars(job).items() if name not in ("connection", "_data")}
    return {name: value for name, value in restored.items() if name not in ("created_at", "enqueued_at")} | {
        "call": (job.func_name, job.args, job.kwargs)
    }


def test_rq_runs_the_scripts_job(redis, settings, origin, run_jobs):
    queue = BookQueue(redis, settings)
    queue.enqueue_books([BookId("8")])
    job = ServiceJob.fetch("book-8", connection=redis)
    assert (job.func_name, job.args, job.origin, job.timeout) == (
        BOOK.func,
        ("8",),
        settings.queue_name,
        settings.job_timeout,
    )
    assert job.retries_left == settings.retry_max

    run_jobs()
    # RESULT_TTL=0: RQ deletes the finished job, its result stream, and keeps it out of the
    # finished registry; the record is the result.
    assert not Job.exists("book-8", connection=redis)
    assert not redis.exists(Result.get_key("book-8"))
    assert queue.rq_queue.finished_job_registry.get_job_ids() == []
    assert queue.store.load_record("8")["title"] == "The Long Way Home"
    assert len(origin.fetches("8")) == 1


def fail_book_9(queue: BookQueue, run_jobs) -> Job:
    queue.enqueue_books([BookId("9")])
    run_jobs()
    job = ServiceJob.fetch("book-9", connection=queue.redis)
    assert job.get_status() == JobStatus.FAILED
    assert job.latest_result() is not None  # RQ keeps the failure in rq:results:book-9
    return job


def test_a_failed_book_is_queued_again_as_cleanly_as_job_delete_leaves_it(redis, settings, origin, run_jobs):
    origin.behave("9", "500")
    queue = BookQueue(redis, settings)
    fail_book_9(queue, run_jobs)
    assert queue.enqueue_books([BookId("9")]) == {"9": Outcome.QUEUED}
    ours = snapshot(redis)

    redis.flushdb()  # the same failure, cleared by RQ itself, then enqueued by RQ
    fail_book_9(queue, run_jobs).delete()
    rq_enqueue_many(queue, BookId("9"))
    redis.hset(queue.store.progress.key("9"), "attempts", 0)  # the service's own reset, which the script does
    theirs = snapshot(redis)

    assert sorted(ours) == sorted(theirs)
    assert ours[Job.key_for("book-9").encode()][b"status"] == b"queued"
    assert ServiceJob.fetch("book-9", connection=redis).latest_result() is None

    origin.behave("9", "page")
    run_jobs()
    assert queue.store.load_record("9")["book_id"] == "9"
    assert queue.states([BookId("9")])["9"].attempts == 1  # counted afresh since it was queued again


@pytest.mark.parametrize("status", ACTIVE_JOB_STATUSES)
def test_a_book_whose_job_is_active_is_not_queued_twice(redis, settings, status):
    queue = BookQueue(redis, settings)
    queue.enqueue_books([BookId("10")])
    redis.hset(Job.key_for("book-10"), "status", status)
    assert queue.enqueue_books([BookId("10")]) == {"10": Outcome.ALREADY_QUEUED}
    assert redis.llen(queue.rq_queue.key) == 1


def test_every_status_rq_has_is_active_or_over():
    over = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
    assert set(ACTIVE_JOB_STATUSES) == {status.value for status in JobStatus} - over


def test_books_are_queued_by_a_redis_that_lost_the_script(redis, settings):
    """A restarted Redis, or a new master, has no scripts: the enqueue loads its own again."""
    queue = BookQueue(redis, settings)
    queue.enqueue_books([BookId("11")])
    redis.script_flush()
    book_ids = [BookId(str(n)) for n in range(12, 2512)]  # three batches in one round trip
    outcomes = queue.enqueue_books([BookId("11"), *book_ids])
    assert outcomes == {"11": Outcome.ALREADY_QUEUED} | dict.fromkeys(book_ids, Outcome.QUEUED)
    assert redis.llen(queue.rq_queue.key) == 1 + len(book_ids)
    assert redis.lrange(queue.rq_queue.key, -1, -1) == [b"book-2511"]


def test_no_books_queue_nothing_and_an_id_that_is_not_digits_is_refused(redis, settings):
    queue = BookQueue(redis, settings)
    assert queue.enqueue_books([]) == {}
    with pytest.raises(ValueError, match="digits"):
        queue.enqueue_books([BookId("1"), BookId('2"],{"x')])
    assert redis.keys("*") == []
