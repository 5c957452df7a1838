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
import math
import socket
import threading
import time
from contextlib import suppress
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from urllib.parse import urlsplit, urlunsplit

from redis import Redis
from rq import Retry, get_current_job

from books.batches import Batches
from books.callbacks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Callbacks,
    deliver_once,
    host_slots,
    refusal,
    signature,
    slot_name,
    target_address,
)
from books.control import schedule_next
from books.jobs import CALLBACKS_CHECK
from books.queue import BookQueue
from books.settings import Settings
from books.status import IN_PROGRESS
from worker.context import settings
from worker.tasks import DEFERRALS_MAX

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


def deliver_callback(batch_id: str) -> str | Retry:
    """POST the batch's summary to its callback URL, signed; raise (so RQ retries) unless a 2xx.
    While ``CALLBACK_HOST_CONCURRENCY`` deliveries to its host are under way, wait a turn
    without spending an attempt."""
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
    reason = refusal(url, config.callback_hosts, config.redis_addresses)
    if reason:
        log.warning("callback refused", extra={"fields": {"batch_id": batch_id, "reason": reason}})
        return f"refused: {reason}"
    slots, slot = host_slots(redis, config), slot_name(target_address(url))
    if not slots.take(slot, batch_id):
        return Retry(max=DEFERRALS_MAX, interval=max(1, math.ceil(config.callback_timeout)))
    try:
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
        status = post_within(url, body, config)
    finally:
        slots.give_back(slot, batch_id)
    fields = {"batch_id": batch_id, "url": url, "status": status}
    if not 200 <= status < 300:
        log.warning("callback failed", extra={"fields": fields})
        raise CallbackFailed(f"{url} answered HTTP {status}")
    callbacks.mark_delivered(batch_id)
    log.info("callback delivered", extra={"fields": fields})
    return f"delivered: HTTP {status}"


def post_within(url: str, body: bytes, config: Settings) -> int:
    """POST ``body`` signed and return the answer's HTTP status, all within CALLBACK_TIMEOUT
    seconds: connecting, sending, and the status line and headers, however slowly they come
    (a timeout per read would let a receiver that drips a byte every few seconds hold the
    worker for the whole job timeout). No redirect followed, no proxy from the environment,
    the answer's body unread."""
    parts = urlsplit(url)
    connection_class = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    deadline = time.monotonic() + config.callback_timeout
    connection = connection_class(parts.hostname or "", parts.port, timeout=config.callback_timeout)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": config.user_agent,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(body, config.callback_secret, timestamp),
    }
    try:
        connection.connect()
        cut = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, (connection,))
        cut.start()
        try:
            connection.request("POST", urlunsplit(("", "", parts.path or "/", parts.query, "")), body, headers)
            return connection.getresponse().status
        finally:
            cut.cancel()
    except (OSError, HTTPException) as error:
        if time.monotonic() >= deadline:
            raise CallbackFailed(f"{url} did not answer within {config.callback_timeout:g} s") from None
        raise CallbackFailed(f"{url} could not be reached: {type(error).__name__}") from None
    finally:
        connection.close()


def _cut(connection: HTTPConnection) -> None:
    """End the delivery's connection where it stands (the socket itself, under any TLS): the
    read or write waiting on it returns at once."""
    sock = connection.sock
    if sock is not None:
        with suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _connection() -> Redis:
    job = get_current_job()
    assert job is not None, "runs as an RQ job"
    return job.connection
