"""A large batch's counts, in process: its POST's counts answered at once, a stale count
recounted by one job on the control queue, final counts kept, exact counts for callbacks,
and small batches counted on every GET as before. BATCH_INLINE_COUNT_BOOKS=3 makes a batch
of four books "large"."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from books.batches import Batches, counts_from_outcomes
from books.jobs import job_queue
from books.queue import BookQueue
from books.settings import ConfigError, Settings
from books.status import Outcome
from tests.listener import Listener

BOOK = "https://www.goodreads.com/book/show/{}"
NONE = dict.fromkeys(
    ("queued", "running", "retrying", "paused", "stored", "not_found", "blocked", "failed", "unknown", "rejected"), 0
)


@pytest.fixture
def large_app(configure) -> Iterator[Flask]:
    app = create_app(configure(BATCH_INLINE_COUNT_BOOKS="3"))
    yield app
    app.extensions["record_cache"].close()


@pytest.fixture
def large(large_app) -> FlaskClient:
    return large_app.test_client()


def post(client: FlaskClient, book_ids: list[int], extra: tuple[str, ...] = (), query: str = "") -> str:
    answer = client.post(f"/parseGoodreadsLinks{query}", json=[BOOK.format(n) for n in book_ids] + list(extra))
    assert answer.status_code == 202, answer.json
    return answer.json["batch_id"]


def control_jobs(redis, settings: Settings) -> list[str]:
    return job_queue(redis, settings.control_queue_name).job_ids


def age(redis, batch_id: str, seconds: float) -> None:
    """Make the batch's latest counts ``seconds`` older."""
    key = f"goodreads:batch:{batch_id}"
    redis.hset(key, "counts_at", float(redis.hget(key, "counts_at")) - seconds)


def seconds_ago(iso_time: str) -> float:
    return time.time() - datetime.fromisoformat(iso_time).timestamp()


def test_each_outcome_of_the_post_counts_under_its_status():
    outcomes = [Outcome.QUEUED, Outcome.ALREADY_QUEUED, Outcome.STORED, Outcome.NOT_FOUND, Outcome.QUEUED]
    first = counts_from_outcomes(outcomes, 2, 1_800_000_000.0)
    assert first.counts == {**NONE, "queued": 3, "stored": 1, "not_found": 1, "rejected": 2}
    assert (first.counted_at, first.finished) == (1_800_000_000.0, False)
    assert counts_from_outcomes([Outcome.STORED, Outcome.NOT_FOUND], 0, 0.0).finished


def test_the_setting_must_not_be_negative():
    assert Settings.from_env({}).batch_inline_count_books == 50_000
    with pytest.raises(ConfigError, match="BATCH_INLINE_COUNT_BOOKS"):
        Settings.from_env({"BATCH_INLINE_COUNT_BOOKS": "-1"})


def test_a_large_batch_answers_at_once_with_what_its_post_did(large, origin, run_jobs, redis, settings):
    origin.behave("812", "404")
    post(large, [811, 812])
    run_jobs()  # 811 stored, 812 not found
    post(large, [813])  # queued: already queued when the batch below is sent
    batch_id = post(large, [811, 812, 813, 814, 815, 814], ("https://example.com/x",))
    run_jobs()  # every book settles, but the batch's counts are those of its POST, a moment ago
    body = large.get(f"/batches/{batch_id}").json
    assert body["counts"] == {**NONE, "queued": 3, "stored": 1, "not_found": 1, "rejected": 1}
    assert body["finished"] is False and seconds_ago(body["counts_at"]) < 5
    assert [link["status"] for link in body["links"]] == ["stored", "not_found"] + ["stored"] * 4 + ["rejected"]
    assert control_jobs(redis, settings) == []  # fresh counts: no recount


def test_stale_counts_schedule_one_recount_and_its_counts_answer_next(large, run_jobs, redis, settings):
    batch_id = post(large, [821, 822, 823, 824, 825])
    age(redis, batch_id, 60)
    answers = [large.get(f"/batches/{batch_id}{query}").json for query in ("?limit=0", "", "?cursor=2")]
    assert {json.dumps(answer["counts"]) for answer in answers} == {json.dumps({**NONE, "queued": 5})}
    assert all(55 < seconds_ago(answer["counts_at"]) < 65 for answer in answers)  # said as old as they are
    assert control_jobs(redis, settings) == [f"batch-counts-{batch_id}"]  # one recount, however many asked

    run_jobs(settings.control_queue_name)  # the recount, while the books are still queued
    body = large.get(f"/batches/{batch_id}?limit=0").json
    assert (body["counts"], body["finished"]) == ({**NONE, "queued": 5}, False)
    assert seconds_ago(body["counts_at"]) < 5
    assert not redis.exists(f"rq:job:batch-counts-{batch_id}")  # deleted once done: the next may come
    assert not redis.hexists(f"goodreads:batch:{batch_id}", "counts")  # not final yet

    run_jobs()
    age(redis, batch_id, 60)
    assert large.get(f"/batches/{batch_id}?limit=0").json["counts"]["queued"] == 5
    run_jobs(settings.control_queue_name)
    body = large.get(f"/batches/{batch_id}?limit=0").json
    assert (body["counts"], body["finished"]) == ({**NONE, "stored": 5}, True)
    final = json.loads(redis.hget(f"goodreads:batch:{batch_id}", "counts"))
    assert final == {**body["counts"], "sources": body["sources"]}  # kept: read back from now on, never recounted
    age(redis, batch_id, 60)
    assert large.get(f"/batches/{batch_id}").json["finished"] is True
    assert control_jobs(redis, settings) == []


def test_a_small_batch_is_counted_on_every_get_as_before(client, run_jobs, redis, settings):
    batch_id = post(client, [831, 832])
    run_jobs()
    body = client.get(f"/batches/{batch_id}?limit=0").json
    assert (body["counts"], body["finished"]) == ({**NONE, "stored": 2}, True)
    assert seconds_ago(body["counts_at"]) < 5
    assert control_jobs(redis, settings) == []


def test_a_large_batch_without_counts_is_counted_once_on_its_first_get(large_app, large, redis, run_jobs):
    """As one made by an earlier version, or by ``Batches.create`` without its POST's counts."""
    post(large, [841, 842, 843, 844])
    batches: Batches = large_app.extensions["batches"]
    batch_id = batches.create([(BOOK.format(n), str(n), None) for n in (841, 842, 843, 844)])
    assert large.get(f"/batches/{batch_id}?limit=0").json["counts"]["queued"] == 4
    run_jobs()
    assert large.get(f"/batches/{batch_id}?limit=0").json["counts"]["queued"] == 4  # the kept count, fresh


def test_an_exact_count_reads_every_book_and_a_recount_of_an_expired_batch_writes_nothing(
    large_app, large, run_jobs, redis, settings
):
    batch_id = post(large, [851, 852, 853, 854])
    run_jobs()
    batches: Batches = large_app.extensions["batches"]
    queue = BookQueue(redis, settings)
    batch = batches.load(batch_id)
    assert batch is not None and batches.counts(batch, queue).counts["queued"] == 4
    assert batches.counts(batch, queue, exact=True).counts == {**NONE, "stored": 4}

    other = batches.load(post(large, [851, 852, 853, 855]))
    assert other is not None
    redis.delete(*redis.keys(f"goodreads:batch:{other.batch_id}*"))  # it expires while being counted
    batches.recount(other, queue)
    assert redis.keys(f"goodreads:batch:{other.batch_id}*") == []


def test_a_large_batch_is_called_back_with_exact_final_counts(configure, run_jobs, redis):
    listener = Listener()
    allowed = f"127.0.0.1:{listener.port}"
    settings = configure(BATCH_INLINE_COUNT_BOOKS="0", CALLBACK_ALLOWED_HOSTS=allowed, CALLBACK_SECRET="s")
    app = create_app(settings)
    try:
        with listener:
            batch_id = post(app.test_client(), [861, 862], query=f"?callback_url={listener.url}/done")
            run_jobs()
            from worker.callbacks import check_callbacks

            job_queue(redis, settings.control_queue_name).enqueue(check_callbacks)
            run_jobs(settings.control_queue_name, settings.callback_queue_name)
            assert len(listener.received) == 1
            payload = json.loads(listener.received[0].body)
    finally:
        app.extensions["record_cache"].close()
    assert (payload["batch_id"], payload["finished"], payload["counts"]) == (batch_id, True, {**NONE, "stored": 2})
