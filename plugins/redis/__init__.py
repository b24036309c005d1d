"""redis plugin: one ``redis.asyncio`` client on a blocking pool, shared by every plugin.

Service ``redis.client`` (absent when ``[redis] url`` is unset). Handlers use
``fastplug.plugins.redis.api.RedisClient``; plugins use ``services[CLIENT]`` (same module).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastplug.config import Settings
from fastplug.core import CheckError, CheckMessage, HealthCheck, PluginInfo, Services, hookimpl
from fastplug.plugins.redis.settings import RedisSettings


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="redis", settings=RedisSettings, description="a shared redis.asyncio client and pool")


@hookimpl
def lifespan(settings: Settings) -> AbstractAsyncContextManager[dict[str, Any]]:
    from fastplug.plugins.redis.client import run

    return run(settings.section("redis", RedisSettings))


async def _ping(services: Services) -> object:
    from fastplug.plugins.redis.api import CLIENT

    client = services.get(CLIENT)
    if client is None:
        return "not configured ([redis] url unset)"
    await client.ping()
    return {"max_connections": client.connection_pool.max_connections}


@hookimpl
def register_exception_handlers() -> dict[type[BaseException], Any]:
    """Redis unreachable, refusing our credentials, loading, read-only...: 503 + Retry-After."""
    from fastplug.plugins.redis.errors import exception_handlers

    return exception_handlers()


@hookimpl
def register_health_checks(settings: Settings) -> Sequence[HealthCheck]:
    # Not critical: what uses Redis here fails open (the cache bypasses it) or has its own
    # check (a redis:// tasks broker). Critical only when the cache fails closed on it.
    cache = settings.sections.get("cache") if "cache" in settings.plugins else None
    fails_closed = getattr(cache, "backend", None) == "redis" and getattr(cache, "fail_open", True) is False
    return [HealthCheck("redis", _ping, critical=fails_closed)]


@hookimpl
def check(settings: Settings) -> Any:
    conf = settings.section("redis", RedisSettings)

    async def connect() -> Sequence[CheckMessage]:
        if conf.url is None:
            return []
        from fastplug.plugins.redis.client import close, create_client

        client = create_client(conf.model_copy(update={"retry": conf.retry.model_copy(update={"retries": 0})}))
        try:
            await client.ping()
        except Exception as exc:
            from fastplug.core import one_line

            return [
                CheckError(
                    f"cannot reach Redis: {one_line(exc)}", "redis.E001", "is [redis] url right and the server up?"
                )
            ]
        finally:
            await close(client)
        return []

    return connect()
