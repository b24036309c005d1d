"""cache plugin: response caching on memory or Redis, done right.

Marks: ``fastplug.plugins.cache.api.cached`` on an endpoint, or ``[cache.routes]`` by route name or path
template. Service ``cache`` (:class:`plugins.cache.service.Cache`, see
``fastplug.plugins.cache.api``) for invalidation; ``cache.stats`` for metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from fastplug.config import Settings
from fastplug.core import CheckError, CheckMessage, HealthCheck, MiddlewareSpec, PluginInfo, Services, hookimpl
from fastplug.plugins.cache.api import SERVICE, STATS
from fastplug.plugins.cache.settings import CacheSettings


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="cache", settings=CacheSettings, after=("redis",), description="response caching on memory or Redis"
    )


@hookimpl
def register_middleware(settings: Settings) -> Sequence[MiddlewareSpec]:
    from fastplug.plugins.cache.middleware import CacheMiddleware

    # Outside compression (200): a hit skips gzip too; inside metrics/timing (100). At the
    # edge: a hit skips FastAPI's own per-request entry as well.
    conf = settings.section("cache", CacheSettings)
    return [MiddlewareSpec("cache", CacheMiddleware, {"conf": conf}, priority=150, edge=True)]


@hookimpl
def lifespan(app: FastAPI, settings: Settings, services: Services) -> Any:
    from fastplug.plugins.cache.backends import MemoryBackend, RedisBackend
    from fastplug.plugins.cache.service import Cache, routes_of

    conf = settings.section("cache", CacheSettings)

    @asynccontextmanager
    async def run() -> AsyncIterator[dict[str, Any]]:
        if conf.backend == "redis":
            from fastplug.plugins.redis.api import CLIENT as REDIS_CLIENT

            client = services.get(REDIS_CLIENT)
            if client is None:
                raise RuntimeError("[cache] backend = 'redis' needs the redis plugin enabled with [redis] url set")
            backend: Any = RedisBackend(
                client, conf.key_prefix, conf.op_timeout, conf.breaker_failures, conf.breaker_cooldown
            )
        else:
            backend = MemoryBackend(conf.max_entries, conf.max_bytes)
        cache = Cache(conf, backend, routes_of(app))
        try:
            yield {SERVICE: cache, STATS: cache.stats}
        finally:
            await cache.close()

    return run()


async def _health(services: Services) -> dict[str, Any]:
    cache = services.require(SERVICE)
    backend = cache.backend
    detail: dict[str, Any] = {"backend": type(backend).__name__, **cache.stats.as_dict()}
    if hasattr(backend, "open_until"):
        import time

        detail["circuit"] = "open" if backend.open_until > time.monotonic() else "closed"
    return detail


@hookimpl
def register_health_checks() -> Sequence[HealthCheck]:
    return [HealthCheck("cache", _health)]


@hookimpl(optionalhook=True)
def register_metrics(registry: Any, runtime: Any) -> None:
    """Hit/miss/stale/bypass counters and backend errors (metrics plugin)."""
    from fastplug.plugins.cache.metrics import CacheCollector

    registry.register(CacheCollector(runtime.services))


@hookimpl
def check(settings: Settings) -> Sequence[CheckMessage]:
    conf = settings.section("cache", CacheSettings)
    if conf.backend != "redis":
        return []
    redis_conf = settings.sections.get("redis")
    if redis_conf is None or getattr(redis_conf, "url", None) is None:
        return [
            CheckError(
                "[cache] backend = 'redis' but Redis is not configured",
                "cache.E001",
                "enable the redis plugin and set [redis] url, or use backend = 'memory'",
            )
        ]
    return []
