"""Metrics kept in Redis and served at /metrics in the Prometheus text format.

Workers count what happens to each attempt in Redis hashes (HINCRBY, one pipeline per
attempt); /metrics reads them and RQ's queue and registries at scrape time. So every
gunicorn worker answers with the same totals, whatever the number of web and worker
processes and hosts, without prometheus_client's multiprocess directory, and the counts
survive restarts with Redis.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis import Redis
from rq import Queue

FETCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.outcomes_key = f"{prefix}:metrics:outcomes"
        self.statuses_key = f"{prefix}:metrics:origin-statuses"
        self.fetch_key = f"{prefix}:metrics:fetch-seconds"

    def record_attempt(self, outcome: str, origin_status: int | None, fetch_seconds: float | None) -> None:
        """Count one attempt: its outcome, the origin's HTTP status, how long the fetch took."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.outcomes_key, outcome, 1)
            pipe.hincrby(self.statuses_key, str(origin_status) if origin_status else "none", 1)
            if fetch_seconds is not None:
                bucket = next((f"{bound}" for bound in FETCH_BUCKETS if fetch_seconds <= bound), "+Inf")
                pipe.hincrby(self.fetch_key, bucket, 1)
                pipe.hincrbyfloat(self.fetch_key, "sum", fetch_seconds)
            pipe.execute()

    def render(self, queue: Queue) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, queue))
        return generate_latest(registry)


class _Collector:
    def __init__(self, metrics: Metrics, queue: Queue) -> None:
        self.metrics = metrics
        self.queue = queue

    def collect(self):
        queue, redis = self.queue, self.metrics.redis
        with redis.pipeline(transaction=False) as pipe:
            pipe.llen(queue.key)
            for registry in (queue.started_job_registry, queue.scheduled_job_registry,
                             queue.finished_job_registry, queue.failed_job_registry):
                pipe.zcard(registry.key)
            pipe.hgetall(self.metrics.outcomes_key)
            pipe.hgetall(self.metrics.statuses_key)
            pipe.hgetall(self.metrics.fetch_key)
            depth, started, scheduled, finished, failed, outcomes, statuses, fetches = pipe.execute()

        yield GaugeMetricFamily("goodreads_queue_depth", "Jobs waiting in the queue", value=depth)
        jobs = GaugeMetricFamily("goodreads_jobs", "RQ jobs by state (finished and failed as long as RQ keeps them)",
                                 labels=["state"])
        for state, count in (("queued", depth), ("started", started), ("scheduled", scheduled),
                             ("finished", finished), ("failed", failed)):
            jobs.add_metric([state], count)
        yield jobs

        attempts = CounterMetricFamily("goodreads_attempts", "Fetch attempts by outcome (stored, not_found, "
                                       "retrying, blocked, failed)", labels=["outcome"])
        for outcome, count in sorted(outcomes.items()):
            attempts.add_metric([outcome.decode()], int(count))
        yield attempts
        yield CounterMetricFamily("goodreads_records_stored", "Records written to Redis",
                                  value=int(outcomes.get(b"stored", 0)))
        responses = CounterMetricFamily("goodreads_origin_responses", "Goodreads answers by HTTP status "
                                        "(none: no answer)", labels=["status"])
        for status, count in sorted(statuses.items()):
            responses.add_metric([status.decode()], int(count))
        yield responses

        cumulative, buckets = 0, []
        for bound in (*map(str, FETCH_BUCKETS), "+Inf"):
            cumulative += int(fetches.get(bound.encode(), 0))
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily("goodreads_fetch_seconds", "Time to fetch a book page from Goodreads",
                                    buckets=buckets, sum_value=float(fetches.get(b"sum", 0)))
