"""One FastAPI lifespan composed from every plugin's, in dependency order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from fastplug.core.manager import PluginHookError, PluginResultError, one_line
from fastplug.core.runtime import Runtime

log = logging.getLogger("fastplug.lifespan")


class PluginStartupError(RuntimeError):
    """A plugin's lifespan raised or timed out at startup; names the plugin and the cause."""

    def __init__(self, plugin: str, cause: str) -> None:
        self.plugin, self.cause = plugin, cause
        super().__init__(f"plugin '{plugin}' failed to start: {cause}")


async def _exit_plugin(name: str, cm: AbstractAsyncContextManager[Any], limit: float) -> None:
    """Shut one plugin down under a time limit; a failure is logged and the others still stop.

    The plugin's context manager always exits cleanly (no exception thrown into it):
    a rollback is not its fault, and code after its ``yield`` must run to free resources.
    """
    began = time.perf_counter()
    try:
        async with asyncio.timeout(limit):
            await cm.__aexit__(None, None, None)
    except TimeoutError:
        log.error("plugin '%s' failed to shut down: timed out after %gs", name, limit)
    except Exception as err:
        log.error("plugin '%s' failed to shut down: %s", name, one_line(err))
    else:
        log.debug("stopped %s in %.1f ms", name, (time.perf_counter() - began) * 1000)


def compose_lifespan(runtime: Runtime) -> Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Any]]]:
    """The app's lifespan: start plugins in order, each under its timeout; stop in reverse.

    If a plugin fails to start, the ones already started are shut down in reverse
    order and :class:`PluginStartupError` is raised (the server then exits non-zero).
    """
    settings = runtime.settings
    conf = settings.core.lifespan

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        services = runtime.services  # one object for the app's life: collectors may hold it
        services.clear()
        runtime.started = []
        runtime.startup_error = None
        async with AsyncExitStack() as stack:
            for name in runtime.plugins.names:
                timeout = conf.timeouts.get(name, conf.startup_timeout)
                began = time.perf_counter()
                limit = asyncio.timeout(timeout)
                try:
                    found = runtime.plugins.call_each_one(
                        name, "lifespan", app=app, settings=settings, services=services
                    )
                    if found is None:
                        continue
                    cm: AbstractAsyncContextManager[Any] = found
                    async with limit:
                        value = await cm.__aenter__()
                except PluginResultError as exc:  # not an async context manager: the hint says why
                    error = PluginStartupError(name, exc.reason)
                except Exception as exc:
                    cause = exc.original if isinstance(exc, PluginHookError) else exc
                    reason = f"timed out after {timeout:g}s" if limit.expired() else one_line(cause)
                    error = PluginStartupError(name, reason)
                    error.__cause__ = cause
                else:
                    stack.push_async_callback(_exit_plugin, name, cm, conf.shutdown_timeout)
                    runtime.started.append(name)
                    if value is not None:
                        services.update(value)
                    log.debug("started %s in %.1f ms", name, (time.perf_counter() - began) * 1000)
                    continue
                runtime.startup_error = str(error)
                log.error("%s", error)
                raise error
            state: dict[str, Any] = dict(services)
            state["fastplug.services"] = services
            runtime.serving = True
            started = getattr(app, "serving_started", None)  # a FastplugApp
            if started is not None:
                started()
            try:
                yield state
            finally:
                runtime.serving = False
                if started is not None:
                    started(False)
        runtime.started = []

    return lifespan
