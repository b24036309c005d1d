"""The db plugin's Prometheus metrics (``register_metrics``, when the metrics plugin is on).

``db_pool_size``, ``db_pool_checked_out``, ``db_pool_overflow`` and ``db_pool_waiters`` are
read from the ``db.pool_stats`` service at scrape time; ``db_queries_per_request{method,
route}`` counts the statements of each HTTP request through the ``db.queries`` counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily

from fastplug.core import Services
from fastplug.plugins.db.api import POOL_STATS, QUERIES

POOL_FIGURES = {
    "size": "Connections the pool keeps (pool_size)",
    "checked_out": "Connections in use",
    "overflow": "Connections opened beyond pool_size",
    "waiters": "Tasks waiting for a connection",
}
QUERY_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100)

RequestEnd = Callable[[str, str, int], None]


class PoolCollector:
    """The pool's figures at scrape time (nothing before the db plugin started)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(f"db_pool_{key}", text) for key, text in POOL_FIGURES.items()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.services.get(POOL_STATS)
        if stats is None:
            return
        figures = stats()
        for key, text in POOL_FIGURES.items():
            yield GaugeMetricFamily(f"db_pool_{key}", text, value=figures[key])


def register(registry: CollectorRegistry, services: Services) -> Sequence[Callable[[], RequestEnd | None]]:
    """Register the pool collector and the queries-per-request histogram; return the
    per-request callback that starts counting statements."""
    registry.register(PoolCollector(services))
    histogram = Histogram(
        "db_queries_per_request",
        "SQL statements run by one HTTP request",
        ("method", "route"),
        buckets=QUERY_BUCKETS,
        registry=registry,
    )
    children: dict[tuple[str, str], Any] = {}

    def begin() -> RequestEnd | None:
        counter = services.get(QUERIES)
        if counter is None:
            return None
        counter.start()

        def end(method: str, route: str, status: int) -> None:
            count = counter.current()  # the innermost counting of this request (X-DB-Queries too)
            if count is None:
                return
            child = children.get((method, route))
            if child is None:
                child = children[(method, route)] = histogram.labels(method, route)
            child.observe(count)

        return end

    return [begin]
