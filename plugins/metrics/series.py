"""Where the HTTP figures of one ``(method, route)`` accumulate, in two flavours.

* One process (the usual ``serve``): plain numbers updated on the event loop, turned into
  metric families only when scraped (:class:`LocalCollector`). An observation is a few
  additions, no lock: prometheus-client's own metrics take a lock per value, ~2.5 us per
  request for these five metrics here.
* Several workers: prometheus-client metrics, whose values live in the multiprocess files
  that a scrape sums (:class:`FileMetrics`).

Both expose the same names, types and labels.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.utils import floatToGoString

LABELS = ("method", "route")
HELP = {
    "http_requests": "HTTP requests answered, by route template and status",
    "http_request_duration_seconds": "Time to answer an HTTP request",
    "http_requests_in_progress": "HTTP requests being handled by their route",
    "http_request_size_bytes": "HTTP request body sizes (Content-Length)",
    "http_response_size_bytes": "HTTP response body sizes as sent",
}


class Level:
    """A gauge value changed only on the event loop."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class LocalSeries:
    """The figures of one ``(method, route)`` in this process."""

    __slots__ = ("bounds", "buckets", "duration", "received", "sent", "statuses")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.duration = 0.0
        self.received = 0
        self.sent = 0
        self.statuses: dict[int, int] = {}

    def observe(self, elapsed: float, status: int, received: int, sent: int) -> None:
        """One answered request."""
        self.buckets[bisect_left(self.bounds, elapsed)] += 1
        self.duration += elapsed
        self.received += received
        self.sent += sent
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1


class LocalCollector:
    """Turns the :class:`LocalSeries` and :class:`Level` tables into metric families."""

    def __init__(
        self,
        bounds: Sequence[float],
        series: dict[tuple[str, str], LocalSeries],
        levels: dict[tuple[str, str], Level],
    ) -> None:
        self.les = [floatToGoString(b) for b in bounds] + ["+Inf"]
        self.series = series
        self.levels = levels

    def describe(self) -> list[Any]:
        return list(self._families())

    def collect(self) -> Iterator[Any]:
        families = self._families()
        requests, duration, in_progress, received, sent = families
        for (method, route), s in list(self.series.items()):
            for status, count in sorted(s.statuses.items()):
                requests.add_metric([method, route, str(status)], count)
            cumulative, total = [], 0
            for le, count in zip(self.les, s.buckets, strict=True):
                total += count
                cumulative.append((le, total))
            duration.add_metric([method, route], cumulative, s.duration)
            received.add_metric([method, route], total, s.received)
            sent.add_metric([method, route], total, s.sent)
        for (method, route), level in list(self.levels.items()):
            in_progress.add_metric([method, route], level.value)
        yield from families

    def _families(self) -> tuple[Any, ...]:
        return (
            CounterMetricFamily("http_requests", HELP["http_requests"], labels=(*LABELS, "status")),
            HistogramMetricFamily(
                "http_request_duration_seconds", HELP["http_request_duration_seconds"], labels=LABELS
            ),
            GaugeMetricFamily("http_requests_in_progress", HELP["http_requests_in_progress"], labels=LABELS),
            SummaryMetricFamily("http_request_size_bytes", HELP["http_request_size_bytes"], labels=LABELS),
            SummaryMetricFamily("http_response_size_bytes", HELP["http_response_size_bytes"], labels=LABELS),
        )


class FileMetrics:
    """The same metrics as prometheus-client objects (multiprocess mode: values in files)."""

    def __init__(self, registry: CollectorRegistry, bounds: Sequence[float]) -> None:
        self.requests = Counter("http_requests_total", HELP["http_requests"], (*LABELS, "status"), registry=registry)
        self.duration = Histogram(
            "http_request_duration_seconds",
            HELP["http_request_duration_seconds"],
            LABELS,
            buckets=bounds,
            registry=registry,
        )
        self.in_progress = Gauge(
            "http_requests_in_progress",
            HELP["http_requests_in_progress"],
            LABELS,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.received = Summary("http_request_size_bytes", HELP["http_request_size_bytes"], LABELS, registry=registry)
        self.sent = Summary("http_response_size_bytes", HELP["http_response_size_bytes"], LABELS, registry=registry)


class FileSeries:
    """The labelled children of one ``(method, route)``, created once and reused."""

    __slots__ = ("duration", "method", "metrics", "received", "route", "sent", "statuses")

    def __init__(self, metrics: FileMetrics, method: str, route: str) -> None:
        self.metrics, self.method, self.route = metrics, method, route
        self.duration = metrics.duration.labels(method, route)
        self.received = metrics.received.labels(method, route)
        self.sent = metrics.sent.labels(method, route)
        self.statuses: dict[int, Any] = {}

    def observe(self, elapsed: float, status: int, received: int, sent: int) -> None:
        """One answered request."""
        self.duration.observe(elapsed)
        self.received.observe(received)
        self.sent.observe(sent)
        child = self.statuses.get(status)
        if child is None:
            child = self.statuses[status] = self.metrics.requests.labels(self.method, self.route, str(status))
        child.inc()
