"""What the worker counts in Redis, per attempt, for ``/metrics`` to render.

Hashes incremented with HINCRBY (one pipeline per attempt) and read at scrape time, so
every web process answers the same totals, whatever the number of web and worker
processes and hosts, and the counts survive restarts with Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from books.record import GOODREADS, OPENLIBRARY, SOURCES
from books.status import BookStatus

# Upper bounds (seconds) of the fetch-duration histogram's buckets.
FETCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Totals:
    """Every counter, as /metrics renders them."""

    outcomes: dict[str, int]  # attempts by outcome: stored, not_found, retrying, blocked, failed
    origin_statuses: dict[str, int]  # Goodreads answers by HTTP status ("none": no answer)
    fetch_buckets: list[tuple[str, int]]  # cumulative counts by upper bound, "+Inf" last
    fetch_seconds_sum: float
    records_by_source: dict[str, int]  # records written, by source (goodreads, openlibrary)
    second_source: dict[str, int]  # Open Library fills by outcome, and "requests" sent for them


class Counters:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.outcomes_key = f"{prefix}:metrics:outcomes"
        self.statuses_key = f"{prefix}:metrics:origin-statuses"
        self.fetch_key = f"{prefix}:metrics:fetch-seconds"
        self.sources_key = f"{prefix}:metrics:records-by-source"
        self.second_source_key = f"{prefix}:metrics:second-source"

    def record_attempt(self, outcome: str, origin_status: int | None, fetch_seconds: float | None) -> None:
        """Count one attempt: its outcome, the origin's HTTP status, how long the fetch took."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.outcomes_key, outcome, 1)
            pipe.hincrby(self.statuses_key, str(origin_status) if origin_status else "none", 1)
            if outcome == BookStatus.STORED:
                pipe.hincrby(self.sources_key, GOODREADS, 1)
            if fetch_seconds is not None:
                bucket = next((f"{bound}" for bound in FETCH_BUCKETS if fetch_seconds <= bound), "+Inf")
                pipe.hincrby(self.fetch_key, bucket, 1)
                pipe.hincrbyfloat(self.fetch_key, "sum", fetch_seconds)
            pipe.execute()

    def record_second_source(self, outcome: str, requests: int) -> None:
        """Count one run of an Open Library fill: its outcome (``stored``, ``no_match``,
        ``goodreads``, ``deferred``, ``trouble``, ``failed``) and the requests it sent."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.second_source_key, outcome, 1)
            pipe.hincrby(self.second_source_key, "requests", requests)
            if outcome == "stored":
                pipe.hincrby(self.sources_key, OPENLIBRARY, 1)
            pipe.execute()

    def totals(self) -> Totals:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.outcomes_key)
            pipe.hgetall(self.statuses_key)
            pipe.hgetall(self.fetch_key)
            pipe.hgetall(self.sources_key)
            pipe.hgetall(self.second_source_key)
            outcomes, statuses, fetches, sources, second_source = pipe.execute()
        cumulative, buckets = 0, []
        for bound in (*map(str, FETCH_BUCKETS), "+Inf"):
            cumulative += int(fetches.get(bound.encode(), 0))
            buckets.append((bound, cumulative))
        return Totals(
            outcomes=_decoded(outcomes),
            origin_statuses=_decoded(statuses),
            fetch_buckets=buckets,
            fetch_seconds_sum=float(fetches.get(b"sum", 0)),
            records_by_source=dict.fromkeys(SOURCES, 0) | _decoded(sources),
            second_source=_decoded(second_source),
        )


def _decoded(counts: dict[bytes, bytes]) -> dict[str, int]:
    return {name.decode(): int(count) for name, count in sorted(counts.items())}
