"""``/metrics`` in the Prometheus text format, rendered from the queue and the worker's counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from books.counters import Counters
from books.origin import OriginHealth, OriginState
from books.queue import BookQueue
from books.refresh import freshness


def render_metrics(queue: BookQueue, counters: Counters, origin: OriginHealth) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(queue, counters, origin))
    return generate_latest(registry)


class _Collector:
    def __init__(self, queue: BookQueue, counters: Counters, origin: OriginHealth) -> None:
        self.queue = queue
        self.counters = counters
        self.origin = origin

    def collect(self) -> Iterator[Metric]:
        jobs, totals = self.queue.job_counts(), self.counters.totals()

        yield GaugeMetricFamily("goodreads_queue_depth", "Jobs waiting in the queue", value=jobs.queued)
        by_state = GaugeMetricFamily(
            "goodreads_jobs", "RQ jobs by state (finished and failed as long as RQ keeps them)", labels=["state"]
        )
        for state in ("queued", "started", "scheduled", "finished", "failed"):
            by_state.add_metric([state], getattr(jobs, state))
        yield by_state

        store = freshness(self.queue)
        if store.oldest_stored_at is not None:  # a time, as Prometheus prefers: its age is time() minus it
            yield GaugeMetricFamily(
                "goodreads_oldest_record_stored_timestamp_seconds",
                "When the oldest stored record was written (epoch seconds)",
                value=store.oldest_stored_at,
            )
        yield GaugeMetricFamily(
            "goodreads_stale_records",
            "Records older than REFRESH_AFTER (the refresh backlog)",
            value=store.stale_records,
        )
        yield GaugeMetricFamily(
            "goodreads_refresh_queue_depth", "Refresh jobs waiting on the refresh queue", value=store.refresh_queued
        )

        attempts = CounterMetricFamily(
            "goodreads_attempts",
            "Fetch attempts by outcome (stored, not_found, retrying, blocked, failed)",
            labels=["outcome"],
        )
        for outcome, count in totals.outcomes.items():
            attempts.add_metric([outcome], count)
        yield attempts
        yield CounterMetricFamily(
            "goodreads_records_stored", "Records written to Redis", value=totals.outcomes.get("stored", 0)
        )
        responses = CounterMetricFamily(
            "goodreads_origin_responses", "Goodreads answers by HTTP status (none: no answer)", labels=["status"]
        )
        for status, count in totals.origin_statuses.items():
            responses.add_metric([status], count)
        yield responses
        by_source = CounterMetricFamily(
            "goodreads_records_by_source", "Records written, by source (goodreads, openlibrary)", labels=["source"]
        )
        for source, count in totals.records_by_source.items():
            by_source.add_metric([source], count)
        yield by_source
        fills = CounterMetricFamily(
            "goodreads_openlibrary_fills",
            "Runs of Open Library fills by outcome (stored, no_match, goodreads, deferred, trouble, failed)",
            labels=["outcome"],
        )
        for outcome, count in totals.second_source.items():
            if outcome != "requests":
                fills.add_metric([outcome], count)
        yield fills
        yield CounterMetricFamily(
            "goodreads_openlibrary_requests",
            "Requests sent to Open Library for fills",
            value=totals.second_source.get("requests", 0),
        )
        yield from self._origin()
        yield HistogramMetricFamily(
            "goodreads_fetch_seconds",
            "Time to fetch a book page from Goodreads",
            buckets=totals.fetch_buckets,
            sum_value=totals.fetch_seconds_sum,
        )

    def _origin(self) -> Iterator[Metric]:
        origin = self.origin.snapshot()
        state = GaugeMetricFamily(
            "goodreads_origin_state", "The origin's shared state: 1 for the current one", labels=["state"]
        )
        for name in OriginState:
            state.add_metric([name], int(origin.state == name))
        yield state
        yield GaugeMetricFamily(
            "goodreads_origin_state_since_seconds",
            "When the origin entered its current state (Unix time; 0 if it never left ok)",
            value=origin.since or 0,
        )
        yield CounterMetricFamily(
            "goodreads_origin_probes", "Probe requests sent while fetching was paused", value=origin.probes
        )
