"""metrics plugin: Prometheus metrics from pure-ASGI middleware, ``GET /metrics``.

``http_requests_total{method, route, status}``, ``http_request_duration_seconds{method,
route}``, ``http_requests_in_progress{method, route}``, ``http_request_size_bytes`` and
``http_response_size_bytes``. ``route`` is the route template (``/users/{user_id}``) or
``<unmatched>``, so cardinality is bounded whatever clients send; exceptions count as 500;
the scrape path is not measured. Other plugins add collectors with the ``register_metrics``
hook. Across ``serve --workers N`` the figures are summed (prometheus-client's multiprocess
mode, set up in ``serve_starting``). prometheus-client is imported only when the app is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy
from fastapi import APIRouter, FastAPI

from fastplug.config import Settings
from fastplug.core import CheckMessage, CheckWarning, MiddlewareSpec, PluginInfo, hookimpl
from fastplug.plugins.metrics import hookspecs
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
        "exclude_path": conf.path,
        "timing_header": conf.timing_header,
        "process_time_header": conf.process_time_header,
    }
    # at the edge, with the cache: cache hits are measured too
    return [MiddlewareSpec("metrics", MetricsMiddleware, options, priority=PRIORITY, edge=True)]


@hookimpl
def register_routers(settings: Settings) -> Sequence[APIRouter]:
    from fastplug.plugins.metrics.routes import build_router
    from fastplug.plugins.metrics.wiring import instruments_of

    return [build_router(_conf(settings), lambda request: instruments_of(request.app))]


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
    conf = _conf(settings)
    if not conf.allow and conf.token is None:
        return [
            CheckWarning(
                f"{conf.path} answers 403 to everyone: [metrics] allow is empty and no token is set",
                "metrics.W001",
                "allow the Prometheus server's network, or set [metrics] token in .secrets.toml",
            )
        ]
    return []
