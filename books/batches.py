"""Batches: the links of one POST, kept so a client can follow them and take the results away.

A batch is one JSON document under ``<prefix>:batch:<batch_id>`` that expires after
``BATCH_TTL``: the links in order, each with its book id or the reason it was refused.
Book states are read live from the jobs and records, so a book shared by two batches
is fetched once and counts in both.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from books.links import BookId
from books.queue import BookQueue
from books.status import IN_PROGRESS, BookStatus, Outcome

# A batch's counts: every book status, and the links refused.
COUNTED = (*BookStatus, Outcome.REJECTED)
_BATCH_ID = re.compile(r"[0-9a-f]{32}")

# One link of a batch: the link as sent (shortened), its book id, or the reason it was refused.
Entry = tuple[str | None, BookId | None, str | None]


class Batches:
    def __init__(self, redis: Redis, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    def key(self, batch_id: str) -> str:
        return f"{self.prefix}:batch:{batch_id}"

    def create(self, entries: list[Entry]) -> str:
        batch_id = uuid.uuid4().hex
        document = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "links": entries}
        self.redis.set(self.key(batch_id), json.dumps(document, separators=(",", ":")), ex=self.ttl)
        return batch_id

    def load(self, batch_id: str) -> dict[str, Any] | None:
        if not _BATCH_ID.fullmatch(batch_id):
            return None
        raw = self.redis.get(self.key(batch_id))
        return json.loads(raw) if raw else None


def book_ids(batch: dict[str, Any]) -> list[BookId]:
    """The batch's distinct books, in the order they were sent."""
    return list(dict.fromkeys(BookId(book_id) for _link, book_id, _reason in batch["links"] if book_id))


def progress(batch_id: str, batch: dict[str, Any], queue: BookQueue) -> dict[str, Any]:
    """Each link's status, counts per status (books once each; rejected links each) and
    whether every book has settled."""
    states = queue.states(book_ids(batch))
    counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
    for state in states.values():
        counts[state.status] += 1
    links = []
    for link, book_id, reason in batch["links"]:
        if book_id is None:
            counts[Outcome.REJECTED] += 1
            links.append({"link": link, "status": Outcome.REJECTED, "reason": reason})
            continue
        state = states[book_id]
        entry = {"link": link, "book_id": book_id, "status": state.status}
        if state.reason and state.status != BookStatus.STORED:
            entry["reason"] = state.reason
        links.append(entry)
    return {
        "batch_id": batch_id,
        "created_at": batch["created_at"],
        "finished": not any(counts[status] for status in IN_PROGRESS),
        "counts": counts,
        "links": links,
    }
