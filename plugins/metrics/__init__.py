"""metrics plugin: Prometheus metrics from pure-ASGI middleware, ``GET /metrics``.

``http_requests_total{method, route, status}``, ``http_request_duration_seconds{method,
route}``, ``http_requests_in_progress{method, route}``, ``http_request_size_bytes`` and
``http_response_size_bytes``. ``route`` is the route template (``/users/{user_id}``) or
``<unmatched>``, so cardinality is bounded whatever clients send; exceptions count as 500;
the scrape path is not measured. Other plugins add collectors with the ``register_metrics``
hook. Across ``serve --workers N`` the figures are summed (prometheus-client's multiprocess
mode, set up in ``serve_starting``). prometheus-client is imported only when the app is built.

Who may scrape is an :class:`fastplug.core.AccessRule` (``[metrics] allow`` / ``token``), also
offered to other plugins as the ``metrics.operator_access`` service (:mod:`.api`). With
``[metrics] port`` the scrape path is served only on that port (:mod:`.port`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pluggy
from fastapi import APIRouter, FastAPI

from fastplug.config import Settings
from fastplug.core import CheckMessage, MiddlewareSpec, PluginInfo, Runtime, hookimpl
from fastplug.plugins.metrics import hookspecs
from fastplug.plugins.metrics.api import OPERATOR_ACCESS
from fastplug.plugins.metrics.settings import MetricsSettings

PRIORITY = 100  # outermost band: time everything inside, compression included


def _conf(settings: Settings) -> MetricsSettings:
    return settings.section("metrics", MetricsSettings)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="metrics",
        settings=MetricsSettings,
        description="Prometheus metrics by route template, /metrics, multiprocess across workers",
    )


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def register_middleware(settings: Settings) -> Sequence[MiddlewareSpec]:
    from fastplug.plugins.metrics.instruments import Instruments
    from fastplug.plugins.metrics.middleware import MetricsMiddleware

    conf = _conf(settings)
    options = {
        "instruments": Instruments(conf.buckets),
        "exclude_path": conf.path if conf.port is None else None,  # on its own port: not here
        "timing_header": conf.timing_header,
        "process_time_header": conf.process_time_header,
    }
    # at the edge, with the cache: cache hits are measured too
    return [MiddlewareSpec("metrics", MetricsMiddleware, options, priority=PRIORITY, edge=True)]


@hookimpl
def register_routers(settings: Settings) -> Sequence[APIRouter]:
    conf = _conf(settings)
    if conf.port is not None:  # served only on the metrics port: the app's port 404s the path
        return []
    from fastplug.plugins.metrics.routes import build_router
    from fastplug.plugins.metrics.wiring import instruments_of

    return [build_router(conf, lambda request: instruments_of(request.app))]


@hookimpl
def lifespan(app: FastAPI, settings: Settings) -> AbstractAsyncContextManager[dict[str, Any]]:
    """Offer the access rule as a service; serve the metrics port, if one is set."""
    from fastplug.plugins.metrics.routes import access_rule

    conf = _conf(settings)
    rule = access_rule(conf)

    @asynccontextmanager
    async def run() -> AsyncIterator[dict[str, Any]]:
        if conf.port is None or not Runtime.of(app).serves_http:  # a worker's processes: the server serves it
            yield {OPERATOR_ACCESS: rule}
            return
        from fastplug.plugins.metrics.port import ScrapeApp, metrics_port
        from fastplug.plugins.metrics.wiring import instruments_of

        instruments = instruments_of(app)
        # several workers share the port only when they share the figures (multiprocess mode)
        shared = instruments.multiprocess_dir is not None
        async with metrics_port(ScrapeApp(conf.path, rule, instruments), conf.host, conf.port, shared):
            yield {OPERATOR_ACCESS: rule}

    return run()


@hookimpl
def app_created(app: FastAPI, settings: Settings) -> None:
    from fastplug.plugins.metrics.wiring import instrument

    instrument(app, _conf(settings).path)


@hookimpl
def serve_starting(settings: Settings, workers: int) -> None:
    from fastplug.plugins.metrics.multiprocess import prepare

    prepare(_conf(settings).multiprocess_dir, workers)


@hookimpl
def worker_exited(pid: int) -> None:
    from fastplug.plugins.metrics.multiprocess import mark_dead

    mark_dead(pid)


@hookimpl
def check(settings: Settings) -> Sequence[CheckMessage]:
    from fastplug.plugins.metrics.checks import exposure

    return exposure(_conf(settings), settings.core.server)
