"""The cache's Prometheus metrics (``register_metrics``, when the metrics plugin is on)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from fastplug.core import Services
from fastplug.plugins.cache.api import SERVICE, STATS


class CacheCollector:
    """``cache_requests_total{outcome=hit|miss|stale|bypass}``, ``cache_backend_errors_total``
    and ``cache_circuit_open``, read from the cache service at scrape time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def describe(self) -> list[Any]:
        return list(self._families({"hit": 0, "miss": 0, "stale": 0, "bypass": 0, "error": 0}, None))

    def collect(self) -> Iterator[Any]:
        stats = self.services.get(STATS)
        cache = self.services.get(SERVICE)
        if stats is None or cache is None:
            return
        yield from self._families(stats.as_dict(), getattr(cache.backend, "open_until", None))

    @staticmethod
    def _families(figures: dict[str, int], open_until: float | None) -> Iterator[Any]:
        import time

        requests = CounterMetricFamily("cache_requests", "Cacheable requests by outcome", labels=["outcome"])
        for outcome in ("hit", "miss", "stale", "bypass"):
            requests.add_metric([outcome], figures[outcome])
        yield requests
        yield CounterMetricFamily("cache_backend_errors", "Cache backend errors and timeouts", value=figures["error"])
        if open_until is not None:
            yield GaugeMetricFamily(
                "cache_circuit_open", "1 while Redis is skipped after errors", value=int(open_until > time.monotonic())
            )
