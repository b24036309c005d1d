"""The tasks plugin's Prometheus figures (``register_metrics``, when the metrics plugin is on).

``tasks_<counter>_total`` for each of :data:`~fastplug.plugins.tasks.metrics.COUNTERS` and the
``tasks_outbox_backlog`` gauge, read from the ``tasks.metrics`` service at scrape time
(figures of the process that answers the scrape).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from fastplug.plugins.tasks.api import METRICS
from fastplug.plugins.tasks.metrics import COUNTERS

BACKLOG = ("tasks_outbox_backlog", "Outbox rows waiting to be published")


class TaskCollector:
    """Counters and backlog at scrape time (nothing before the tasks plugin started)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime  # its services are replaced each time the lifespan starts

    def describe(self) -> list[Any]:
        return [*(CounterMetricFamily(f"tasks_{n}", text) for n, text in COUNTERS.items()), GaugeMetricFamily(*BACKLOG)]

    def collect(self) -> Iterator[Any]:
        metrics = self.runtime.services.get(METRICS)
        if metrics is None:
            return
        for name, text in COUNTERS.items():
            yield CounterMetricFamily(f"tasks_{name}", text, value=getattr(metrics, name))
        if metrics.outbox_backlog is not None:
            yield GaugeMetricFamily(*BACKLOG, value=metrics.outbox_backlog)
