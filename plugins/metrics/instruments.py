"""The HTTP metrics of one app, their labelled children cached per route, and the exposition."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from fastplug.plugins.metrics.hookspecs import RequestBegin, RequestEnd
from fastplug.plugins.metrics.multiprocess import MULTIPROC_ENV
from fastplug.plugins.metrics.series import FileMetrics, FileSeries, Level, LocalCollector, LocalSeries

UNMATCHED = "<unmatched>"
MOUNTED = "{mount}"  # the prefix of a route under a mount whose path is not a plain string
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"))
OTHER_METHOD = "OTHER"  # any other method a client sends: one label value, not one each


class PluginRegistry(CollectorRegistry):
    """A registry that remembers the collectors that are not plain metrics.

    In multiprocess mode metric values live in files (summed by ``MultiProcessCollector``);
    the other collectors are exposed beside them, as the answering worker sees them.
    """

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self.custom: list[Collector] = []

    def register(self, collector: Collector) -> None:
        super().register(collector)
        if not isinstance(collector, MetricWrapperBase):
            self.custom.append(collector)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        if collector in self.custom:
            self.custom.remove(collector)


class Instruments:
    """The HTTP metrics of one app. Label values are bounded: methods outside
    :data:`METHODS` become ``OTHER``, routes are templates or ``<unmatched>``."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = PluginRegistry()
        self.bounds = tuple(float(b) for b in buckets)
        self.series: dict[tuple[str, str], Any] = {}
        self.levels: dict[tuple[str, str], Any] = {}
        self.files: FileMetrics | None = None
        if self.multiprocess_dir is None:
            self.registry.register(LocalCollector(self.bounds, self.series, self.levels))
        else:
            self.files = FileMetrics(self.registry, self.bounds)
        self.request_hooks: list[RequestBegin] = []
        self.mount_paths: frozenset[str] = frozenset()

    def series_for(self, method: str, route: str) -> Any:
        """Where ``(method, route)`` requests are observed (created on first use)."""
        series = self.series.get((method, route))
        if series is None:
            series = LocalSeries(self.bounds) if self.files is None else FileSeries(self.files, method, route)
            self.series[(method, route)] = series
        return series

    def level_for(self, method: str, route: str) -> Any:
        """The in-progress gauge of ``(method, route)``: ``inc()``/``dec()``."""
        level = self.levels.get((method, route))
        if level is None:
            level = Level() if self.files is None else self.files.in_progress.labels(method, route)
            self.levels[(method, route)] = level
        return level

    def label(self, route: Any, root_delta: str) -> str:
        """The route label of a request routed under a mount (``root_delta`` is the part of
        ``root_path`` the mounts added): the mount's path when it is a plain one."""
        own = getattr(route, "path_format", None) or UNMATCHED
        path = getattr(route, "path", None)
        if own.endswith("/{path}") and path is not None and root_delta.endswith(path):
            root_delta = root_delta[: len(root_delta) - len(path)]  # the route is the mount
        if not root_delta:
            return own
        return (root_delta if root_delta in self.mount_paths else MOUNTED) + own

    def record(
        self,
        scope: dict[str, Any],
        root_path: str,
        status: int,
        sent: int,
        elapsed: float,
        ends: Iterable[RequestEnd] | None,
    ) -> None:
        """Observe one answered request."""
        method = scope["method"]
        if method not in METHODS:
            method = OTHER_METHOD
        route = scope.get("route")
        if route is None:
            label = UNMATCHED
        elif scope.get("root_path", "") == root_path:
            label = getattr(route, "path_format", None) or UNMATCHED
        else:
            label = self.label(route, scope["root_path"][len(root_path) :])
        received = 0
        for name, value in scope["headers"]:
            if name == b"content-length":
                received = int(value) if value.isdigit() else 0
                break
        series = self.series.get((method, label)) or self.series_for(method, label)
        series.observe(elapsed, status, received, sent)
        if ends:
            for end in ends:
                end(method, label, status)

    def scrape_registry(self) -> CollectorRegistry:
        """What a scrape exposes: this registry, or in multiprocess mode every worker's
        metric files plus this worker's other collectors."""
        if self.multiprocess_dir is None:
            return self.registry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        for collector in self.registry.custom:  # other plugins' collectors, as this worker sees them
            registry.register(collector)
        return registry

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The body and content type of a scrape (OpenMetrics when the scraper asks)."""
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.scrape_registry()), content_type
