"""The job format in process: every job the service enqueues is JSON and names a function of the
one registry; a worker runs nothing else, loads no pickle, imports nothing a job names, and
fails such a job at once with its reason; jobs an earlier version pickled are carried over."""

from __future__ import annotations

import ast
import contextlib
import json
import pickle
import zlib

import pytest
from rq import Queue
from rq.job import JobStatus
from rq.utils import import_attribute

from books.batches import schedule_recount
from books.callbacks import Callbacks, deliver_once
from books.control import schedule_next
from books.jobs import BATCH_RECOUNT, CALLBACKS_CHECK, JOB_KINDS, SERVICE_FUNCTIONS, JobSerializer
from books.links import BookId
from books.queue import BookQueue
from tests.crafted_jobs import json_call, pickle_that_touches, write_job
from tests.processes import ROOT
from worker.jobs import NOT_JSON, PICKLED_NOT_CARRIED_OVER, ServiceJob, migrate_pickled_jobs
from worker.rq_worker import BookWorker

MARKS: list[tuple] = []


def leave_mark(*args: object) -> None:
    """A callback a crafted job names: called, it would leave a mark."""
    MARKS.append(args)


def reason(redis, job_id: str) -> str:
    job = ServiceJob.fetch(job_id, connection=redis)
    assert job.get_status() == JobStatus.FAILED
    result = job.latest_result()
    assert result is not None
    return result.exc_string or ""


def test_every_kind_of_job_names_a_function_a_worker_can_run():
    assert len(SERVICE_FUNCTIONS) == len(JOB_KINDS)
    for kind in JOB_KINDS:
        assert callable(import_attribute(kind.func)), kind.func


def test_no_module_but_the_registry_names_a_job_function():
    """Job functions are named in books/jobs.py only: every enqueue takes them from there."""
    named = {}
    for package in ("app", "books", "worker"):
        for path in (ROOT / package).glob("*.py"):
            if path.name == "jobs.py" and package == "books":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in SERVICE_FUNCTIONS:
                    named[str(path.relative_to(ROOT))] = node.value
    assert named == {}


def test_every_job_the_service_enqueues_is_json_of_a_registered_function(redis, settings):
    BookQueue(redis, settings).enqueue_books([BookId("1")])
    BookQueue(redis, settings).enqueue_books([BookId("2")], low_priority=True)
    schedule_next(redis, settings, CALLBACKS_CHECK, 60)
    schedule_recount(redis, settings, "a" * 32)
    callbacks = Callbacks(redis, settings.key_prefix, settings.batch_ttl)
    callbacks.register("b" * 32, "http://example.com/", "http://service/batches/b", [])
    assert deliver_once(callbacks, settings, "b" * 32)
    job_keys = [key for key in redis.keys("rq:job:*")]
    assert len(job_keys) == 5
    for key in job_keys:
        data = redis.hget(key, "data")
        with contextlib.suppress(zlib.error):  # the enqueue script leaves a book's call uncompressed
            data = zlib.decompress(data)
        func, instance, args, kwargs = json.loads(data)
        assert func in SERVICE_FUNCTIONS and instance is None and kwargs == {}, key
        assert all(isinstance(arg, str) for arg in args)


def test_the_registry_gives_each_kind_its_queue_and_ttls(redis, settings):
    schedule_recount(redis, settings, "c" * 32)
    job = ServiceJob.fetch(BATCH_RECOUNT.job_id("c" * 32), connection=redis)
    assert (job.origin, job.result_ttl, job.failure_ttl, job.timeout) == (
        settings.control_queue_name,
        0,
        60,
        settings.job_timeout,
    )


@pytest.mark.parametrize(
    ("crafted", "expected"),
    [
        ("pickle", NOT_JSON),
        ("os.system", "'os.system' is not a job of this service"),
        ("a method of a value", "'upper' is not a job of this service"),
        ("not a call", NOT_JSON),
    ],
)
def test_a_crafted_job_fails_with_its_reason_and_runs_nothing(redis, settings, run_jobs, tmp_path, crafted, expected):
    marker = tmp_path / "ran"
    data = {
        "pickle": pickle_that_touches(marker),
        "os.system": json_call("os.system", f"touch {marker}"),
        "a method of a value": json.dumps(["upper", "abc", [], {}]).encode(),
        "not a call": b'{"func": "os.system"}',
    }[crafted]
    write_job(redis, settings.queue_name, "crafted", data, retries_left=3, retry_intervals="[0]")
    run_jobs()
    assert expected in reason(redis, "crafted")  # failed at once, its retries unspent
    assert not marker.exists()


@pytest.mark.parametrize("callback", ["success_callback_name", "failure_callback_name", "stopped_callback_name"])
def test_a_job_naming_a_callback_is_refused_and_the_callback_never_called(redis, settings, run_jobs, callback):
    MARKS.clear()
    write_job(
        redis,
        settings.queue_name,
        "crafted",
        json_call("worker.tasks.parse_book", "1"),
        **{callback: f"{__name__}.leave_mark"},
    )
    run_jobs()
    assert "names a callback or webhook" in reason(redis, "crafted")
    assert MARKS == []


def test_a_job_naming_a_webhook_is_refused_and_nothing_is_sent(redis, settings, run_jobs):
    from tests.listener import Listener

    with Listener() as listener:
        hooks = [{"url": f"{listener.url}/hook", "job_status": status} for status in ("finished", "failed")]
        write_job(
            redis, settings.queue_name, "crafted", json_call("worker.tasks.parse_book", "1"), webhooks=json.dumps(hooks)
        )
        run_jobs()
        assert "names a callback or webhook" in reason(redis, "crafted")
    assert listener.received == []


def earlier_version_queue(redis, name: str) -> Queue:
    """A queue as an earlier version wrote to it: RQ's default, pickle."""
    return Queue(name, connection=redis)


def test_books_an_earlier_version_queued_pickled_are_carried_over_and_stored(redis, settings, origin, run_jobs):
    queue = BookQueue(redis, settings)
    earlier_version_queue(redis, settings.queue_name).enqueue_call(
        "worker.tasks.parse_book", args=("5",), job_id="book-5", meta={"kept": "nothing"}
    )
    earlier_version_queue(redis, settings.control_queue_name).enqueue_call(
        "worker.batches.recount_batch", args=("d" * 32,), job_id=BATCH_RECOUNT.job_id("d" * 32)
    )
    assert migrate_pickled_jobs(redis, settings) == (2, 0)
    assert json.loads(redis.hget("rq:job:book-5", "data")) == ["worker.tasks.parse_book", None, ["5"], {}]
    run_jobs(settings.control_queue_name)
    run_jobs()
    assert queue.store.load_record("5")["book_id"] == "5"


def test_a_pickled_job_that_is_not_a_plain_service_call_is_failed_at_start_up(redis, settings, run_jobs, tmp_path):
    marker = tmp_path / "ran"
    write_job(redis, settings.queue_name, "crafted", pickle_that_touches(marker))
    write_job(redis, settings.queue_name, "elsewhere", pickle.dumps(("os.system", None, ("touch x",), {})))
    assert migrate_pickled_jobs(redis, settings) == (0, 2)
    assert not marker.exists()
    assert reason(redis, "crafted") == reason(redis, "elsewhere") == PICKLED_NOT_CARRIED_OVER
    assert redis.llen(f"rq:queue:{settings.queue_name}") == 0


def test_pickled_jobs_are_carried_over_once(redis, settings):
    assert migrate_pickled_jobs(redis, settings) == (0, 0)
    earlier_version_queue(redis, settings.queue_name).enqueue_call(
        "worker.tasks.parse_book", args=("6",), job_id="book-6"
    )
    assert migrate_pickled_jobs(redis, settings) == (0, 0)  # done before: left to the worker
    assert redis.hget("rq:job:book-6", "data")[:1] == b"x"  # still RQ's compressed pickle


def test_the_serializer_refuses_what_is_not_json():
    assert JobSerializer.loads(JobSerializer.dumps(["f", None, ["1"], {}])) == ["f", None, ["1"], {}]
    with pytest.raises(Exception, match="not JSON"):
        JobSerializer.loads(pickle.dumps(("f", None, (), {})))
    with pytest.raises(ValueError):
        JobSerializer.dumps([float("nan")])


def test_the_dashboard_reads_jobs_as_json_and_refuses_a_pickle(client, redis, settings, tmp_path):
    BookQueue(redis, settings).enqueue_books([BookId("3")])
    answer = client.get("/rqstatus/0/data/job/book-3.json")
    assert (answer.status_code, answer.json["description"], answer.json["metadata"]) == (200, "parse book 3", "{}")
    marker = tmp_path / "ran"
    write_job(redis, settings.queue_name, "crafted", json_call("x"), meta=pickle_that_touches(marker))
    refused = client.get("/rqstatus/0/data/job/crafted.json")
    assert (refused.status_code, refused.json["error"]) == (422, "unsafe_job_data")
    assert not marker.exists()


def test_a_worker_reads_json_whatever_queues_and_classes_its_command_line_gives(redis, settings):
    worker = BookWorker([Queue(settings.queue_name, connection=redis)], connection=redis, job_class="rq.job.Job")
    assert worker.job_class is ServiceJob and worker.serializer is JobSerializer
    assert [queue.serializer for queue in worker.queues] == [JobSerializer]
    assert worker.queues[0].job_class is ServiceJob
