"""The recount job: a large batch's counts, read in full by a worker, so that no answer of
``GET /batches/<id>`` waits for them (see books/batches.py)."""

from __future__ import annotations

import logging

from rq import get_current_job

from books.batches import Batches
from books.queue import BookQueue
from worker.context import settings

log = logging.getLogger(__name__)


def recount_batch(batch_id: str) -> str:
    """Count the batch's books and keep the counts (its final counts if it has finished)."""
    config = settings()
    job = get_current_job()
    assert job is not None, "runs as an RQ job"
    batches = Batches(job.connection, config.key_prefix, config.batch_ttl)
    batch = batches.load(batch_id)
    if batch is None:
        return "the batch expired"
    if batch.final is not None:
        return "finished before"
    counted = batches.recount(batch, BookQueue(job.connection, config))
    fields = {"batch_id": batch_id, "books": batch.books, "finished": counted.finished, "took": round(counted.took, 3)}
    log.info("batch recounted", extra={"fields": fields})
    return "finished" if counted.finished else "counted"
