"""The callback jobs: find the batches whose books have all settled, and deliver each one's
summary, signed, to its URL.

Why a periodic check and not a hook in the book job: a book can settle without its job's
code running to the end (a killed work horse, a job RQ gives up on), a book can be shared by
several batches, and a book queued before the batch was registered can settle in between;
reading the books' states catches every case. It stays cheap: each batch keeps only its
pending books, in batch order, and a check reads them a window at a time from the first,
stopping at the first window with a book still in progress (the queue is served in order,
so the rest are waiting too). A check costs one Redis round trip per open batch while
nothing settles, and the batch's size once over its whole life.
"""

from __future__ import annotations

import json
import logging

import requests
from redis import Redis
from rq import get_current_job

from books.batches import Batches
from books.callbacks import SIGNATURE_HEADER, Callbacks, deliver_once, refusal, signature
from books.control import schedule_next
from books.jobs import CALLBACKS_CHECK
from books.queue import BookQueue
from books.settings import Settings
from books.status import IN_PROGRESS
from worker.tasks import settings

log = logging.getLogger(__name__)

# How many pending books of a batch one read takes.
WINDOW = 500


class CallbackFailed(Exception):
    """The callback URL did not answer with a 2xx; RQ tries again later."""


def check_callbacks() -> int:
    """Schedule the delivery of every batch whose books have all settled; return how many."""
    config = settings()
    redis = _connection()
    callbacks = Callbacks(redis, config.key_prefix, config.batch_ttl)
    open_batches = callbacks.open_batches()
    if open_batches:  # the next check first, so a check that dies does not end them
        schedule_check(redis, config)
    queue = BookQueue(redis, config)
    done = 0
    for batch_id in open_batches:
        if callbacks.target(batch_id) is None:
            callbacks.forget(batch_id)
        elif remaining_books(callbacks, queue, batch_id) == 0 and deliver_once(callbacks, config, batch_id):
            done += 1
    return done


def schedule_check(redis: Redis, config: Settings) -> None:
    if config.callback_hosts:
        schedule_next(redis, config, CALLBACKS_CHECK, config.callback_check_interval)


def remaining_books(callbacks: Callbacks, queue: BookQueue, batch_id: str) -> int:
    """Drop the batch's books that have settled, a window at a time; return how many remain."""
    while True:
        window = callbacks.pending(batch_id, WINDOW)
        if not window:
            return 0
        states = queue.states(window)
        settled = [book_id for book_id in window if states[book_id].status not in IN_PROGRESS]
        remaining = callbacks.settle(batch_id, settled)
        if len(settled) < len(window):
            return remaining


def deliver_callback(batch_id: str) -> str:
    """POST the batch's summary to its callback URL, signed; raise (so RQ retries) unless a 2xx."""
    config = settings()
    redis = _connection()
    callbacks = Callbacks(redis, config.key_prefix, config.batch_ttl)
    target = callbacks.target(batch_id)
    batches = Batches(redis, config.key_prefix, config.batch_ttl)
    batch = batches.load(batch_id)
    if callbacks.delivered(batch_id):
        return "delivered before"
    if target is None or batch is None:
        return "the batch expired"
    url, batch_url = target
    reason = refusal(url, config.callback_hosts)
    if reason:
        log.warning("callback refused", extra={"fields": {"batch_id": batch_id, "reason": reason}})
        return f"refused: {reason}"
    counted = batches.counts(batch, BookQueue(redis, config), exact=True)  # never a large batch's latest
    body = json.dumps(
        {
            "batch_id": batch_id,
            "batch_url": batch_url,
            "created_at": batch.created_at,
            "finished": counted.finished,
            "counts": counted.counts,
        },
        separators=(",", ":"),
    ).encode()
    status = _post(url, body, config)
    fields = {"batch_id": batch_id, "url": url, "status": status}
    if not 200 <= status < 300:
        log.warning("callback failed", extra={"fields": fields})
        raise CallbackFailed(f"{url} answered HTTP {status}")
    callbacks.mark_delivered(batch_id)
    log.info("callback delivered", extra={"fields": fields})
    return f"delivered: HTTP {status}"


def _post(url: str, body: bytes, config: Settings) -> int:
    """POST without following redirects, without proxies from the environment, and without
    reading the answer's body; return its HTTP status."""
    with requests.Session() as session:
        session.trust_env = False
        response = session.post(
            url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": config.user_agent,
                SIGNATURE_HEADER: signature(body, config.callback_secret),
            },
            timeout=config.callback_timeout,
            allow_redirects=False,
            stream=True,
        )
        response.close()
        return response.status_code


def _connection() -> Redis:
    job = get_current_job()
    assert job is not None, "runs as an RQ job"
    return job.connection
