"""profiling plugin: event-loop lag, blocking detection, slow requests and on-demand profiles.

* **Loop lag and blocking** (``loop_lag``): a timer measures how late the loop runs it
  (``event_loop_lag_seconds``); a watchdog thread takes the loop thread's stack while the loop
  is stuck past ``block_threshold_ms`` and one warning names the route and the app's frames
  (``event_loop_blocked_seconds_total{method, route}``). See :mod:`.loop`.
* **Slow requests** (``slow_request_ms``): logged with route, status, duration and SQL
  statement count, sampled; on the metrics plugin's per-request hook when it runs. See :mod:`.slow`.
* **On-demand profiles** (``on_demand``): ``?_profile`` or ``X-Profile`` returns (or stores) a
  pyinstrument profile of that request; ``manage.py profile METHOD PATH -n N``. See :mod:`.on_demand`.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import click
from fastapi import FastAPI

from fastplug.config import Settings
from fastplug.core import AccessRule, CheckMessage, MiddlewareSpec, PluginInfo, Runtime, Services, hookimpl
from fastplug.plugins.profiling.settings import ProfilingSettings

ON_DEMAND_PRIORITY = 15  # inside security (hosts first), outside metrics, rate limits and the cache
SLOW_PRIORITY = 90  # only without the metrics plugin, where metrics would time requests
_INSTRUMENTS: dict[int, Any] = {}  # id(runtime.services) -> Instruments, made at build time


def _conf(settings: Settings) -> ProfilingSettings:
    return settings.section("profiling", ProfilingSettings)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="profiling",
        settings=ProfilingSettings,
        description="event-loop lag and blocking detection, slow requests, on-demand profiles",
    )


def _slow(conf: ProfilingSettings, runtime: Runtime | None) -> Any:
    from fastplug.plugins.profiling.slow import SlowRequests

    queries = None
    if runtime is not None:
        services = runtime.services

        def queries() -> int | None:
            from fastplug.plugins.db.api import QUERIES

            counter = services.get(QUERIES)
            return counter.current() if counter is not None else None

    return SlowRequests(conf.slow_request_ms / 1000, conf.slow_sample_rate, queries)


@hookimpl
def register_middleware(settings: Settings) -> Sequence[MiddlewareSpec]:
    conf = _conf(settings)
    specs = []
    if conf.on_demand:
        from fastplug.plugins.metrics.api import OPERATOR_ACCESS
        from fastplug.plugins.profiling.on_demand import OnDemandProfiler

        options = {
            "interval": conf.sample_interval,
            "fallback": AccessRule.build(conf.allow),
            "operator_key": OPERATOR_ACCESS if "metrics" in settings.plugins else None,
            "profile_dir": conf.profile_dir,
        }
        specs.append(
            MiddlewareSpec("profiling.on_demand", OnDemandProfiler, options, priority=ON_DEMAND_PRIORITY, edge=True)
        )
    if conf.slow_request_ms and "metrics" not in settings.plugins:
        from fastplug.plugins.profiling.slow import SlowRequestMiddleware

        queries_key = None
        if "db" in settings.plugins:
            from fastplug.plugins.db.api import QUERIES

            queries_key = QUERIES
        specs.append(
            MiddlewareSpec(
                "profiling.slow_requests",
                SlowRequestMiddleware,
                {"slow": _slow(conf, None), "queries_key": queries_key},
                priority=SLOW_PRIORITY,
                edge=True,
            )
        )
    return specs


@hookimpl(optionalhook=True)
def register_metrics(registry: Any, runtime: Runtime) -> Sequence[Any]:
    """``event_loop_lag_seconds``, ``event_loop_lag_last_seconds``,
    ``event_loop_blocked_seconds_total`` and ``event_loop_blocks_total`` (metrics plugin); the
    slow-request log rides on its per-request hook."""
    conf = _conf(runtime.settings)
    if conf.loop_lag:
        from fastplug.plugins.profiling.loop import Instruments

        key = id(runtime.services)
        _INSTRUMENTS[key] = Instruments(registry)
        weakref.finalize(runtime.services, _INSTRUMENTS.pop, key, None)
    return [_slow(conf, runtime).begin] if conf.slow_request_ms else []


@hookimpl
def lifespan(app: FastAPI, settings: Settings, services: Services) -> Any:
    conf = _conf(settings)
    if not conf.loop_lag:
        return None

    @asynccontextmanager
    async def run() -> AsyncIterator[dict[str, Any]]:
        import fastplug.config
        import fastplug.core
        from fastplug.plugins.profiling.api import LOOP
        from fastplug.plugins.profiling.loop import LoopMonitor
        from fastplug.plugins.profiling.stacks import StackReader

        runtime = Runtime.of(app)
        own = [os.path.dirname(m.__file__ or "") for m in (fastplug.core, fastplug.config)]
        reader = StackReader(
            app.router.routes,
            [p.obj for p in runtime.plugins if p.name != "profiling"],
            exclude=[*own, os.path.dirname(__file__)],
        )
        monitor = LoopMonitor(
            reader,
            conf.lag_interval,
            conf.block_threshold_ms / 1000,
            conf.log_interval,
            conf.stack_limit,
            _INSTRUMENTS.get(id(runtime.services)),
            serving=lambda: runtime.serving,
        )
        monitor.start()
        try:
            yield {LOOP: monitor.figures}
        finally:
            monitor.stop()

    return run()


@hookimpl
def register_commands() -> Sequence[click.Command]:
    from fastplug.plugins.profiling.cli import profile_command

    return [profile_command]


@hookimpl
def check(settings: Settings) -> Sequence[CheckMessage]:
    from fastplug.plugins.profiling.checks import profiling_checks

    return profiling_checks(_conf(settings), settings)
