"""Connect one built app to its metrics: other plugins' collectors, in-progress wrappers."""

from __future__ import annotations

from typing import Any

from starlette.routing import Mount, Route

from fastplug.core import Runtime
from fastplug.plugins.metrics.instruments import Instruments
from fastplug.plugins.metrics.middleware import InProgress

MIDDLEWARE_NAME = "metrics"


def instruments_of(app: Any) -> Instruments:
    """The :class:`Instruments` of a fastplug ``app`` (held by its metrics middleware spec)."""
    for _, spec in Runtime.of(app).middleware:
        if spec.name == MIDDLEWARE_NAME:
            return spec.options["instruments"]  # type: ignore[no-any-return]
    raise LookupError("the metrics middleware is not in this app")


def instrument(app: Any, scrape_path: str) -> Instruments:
    """Call ``register_metrics`` on every plugin, and wrap each HTTP route's app so
    requests in progress are counted under the route's template."""
    runtime = Runtime.of(app)
    instruments = instruments_of(app)
    for _, begins in runtime.plugins.call_each("register_metrics", registry=instruments.registry, runtime=runtime):
        instruments.request_hooks.extend(begins)
    mounts = set()
    for route in app.router.routes:
        if isinstance(route, Mount):
            if "{" not in route.path:
                mounts.add(route.path)
        elif isinstance(route, Route) and route.path != scrape_path and not isinstance(route.app, InProgress):
            route.app = InProgress(route.app, instruments, route.path_format)
    instruments.mount_paths = frozenset(mounts)
    return instruments
