"""The db plugin's Prometheus metrics (``register_metrics``, when the metrics plugin is on).

``db_pool_size``, ``db_pool_checked_out``, ``db_pool_overflow`` and ``db_pool_waiters`` are
read from the ``db.pool_stats`` service at scrape time (with ``[db] read_urls``, also
``db_replica_lag_seconds{replica}`` and ``db_replica_usable{replica}``); ``db_queries_per_request{method,
route}`` counts the statements of each HTTP request through the ``db.queries`` counter.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from fastplug.core import Services
from fastplug.plugins.db.api import POOL_STATS, QUERIES, REPLICAS

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
        replicas = self.services.get(REPLICAS)
        if replicas is not None:
            lag = GaugeMetricFamily(
                "db_replica_lag_seconds", "Replay lag of each read replica at its last check", labels=["replica"]
            )
            usable = GaugeMetricFamily(
                "db_replica_usable", "1 when a read replica takes reads, 0 while it is left out", labels=["replica"]
            )
            for name, replica in replicas.figures().items():
                if replica["lag"] is not None:
                    lag.add_metric([name], replica["lag"])
                usable.add_metric([name], 1.0 if replica["usable"] else 0.0)
            yield lag
            yield usable


class LocalQueries:
    """``db_queries_per_request`` in one process: plain numbers updated on the event loop,
    turned into a histogram family at scrape time (prometheus-client's ``Histogram`` takes a
    lock per value on every request)."""

    NAME = "db_queries_per_request"
    HELP = "SQL statements run by one HTTP request"

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], list[float]] = {}  # buckets..., sum

    def observe(self, method: str, route: str, count: int) -> None:
        values = self.series.get((method, route))
        if values is None:
            values = self.series[(method, route)] = [0.0] * (len(QUERY_BUCKETS) + 2)
        values[bisect_left(QUERY_BUCKETS, count)] += 1  # the first bucket with le >= count
        values[-1] += count

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.NAME, self.HELP, labels=("method", "route"))]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.NAME, self.HELP, labels=("method", "route"))
        for (method, route), values in list(self.series.items()):
            running, buckets = 0.0, []
            for bound, value in zip((*QUERY_BUCKETS, float("inf")), values[:-1], strict=True):
                running += value
                buckets.append((floatToGoString(bound), running))
            family.add_metric([method, route], buckets, values[-1])
        yield family


def register(registry: CollectorRegistry, services: Services) -> Sequence[Callable[[], RequestEnd | None]]:
    """Register the pool collector and the queries-per-request histogram; return the
    per-request callback that starts counting statements. One process keeps the histogram
    as plain numbers (:class:`LocalQueries`); several workers use prometheus-client's, whose
    values live in the multiprocess files a scrape sums."""
    registry.register(PoolCollector(services))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        histogram = Histogram(
            LocalQueries.NAME, LocalQueries.HELP, ("method", "route"), buckets=QUERY_BUCKETS, registry=registry
        )
        children: dict[tuple[str, str], Any] = {}

        def observe(method: str, route: str, count: int) -> None:
            child = children.get((method, route))
            if child is None:
                child = children[(method, route)] = histogram.labels(method, route)
            child.observe(count)

    else:
        local = LocalQueries()
        registry.register(local)
        observe = local.observe

    lookup = services.get

    def end(method: str, route: str, status: int) -> None:
        counter = lookup(QUERIES)
        count = counter.current() if counter is not None else None  # the innermost counting of this request
        if count is not None:
            observe(method, route, count)

    def begin() -> RequestEnd | None:
        counter = lookup(QUERIES)
        if counter is None:
            return None
        counter.start()
        return end  # one function for every request: the count lives in the request's context

    return [begin]
