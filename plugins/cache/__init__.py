"""cache plugin: response caching on memory or Redis, done right.

Marks: ``fastplug.plugins.cache.api.cached`` on an endpoint, or ``[cache.routes]`` by route name or path
template. Service ``cache`` (:class:`plugins.cache.service.Cache`, see
``fastplug.plugins.cache.api``) for invalidation; ``cache.stats`` for metrics. With the
memory backend and ``serve --workers N``, invalidations reach every worker through shared
memory set up before the fork (``serve_starting``, see ``fastplug.plugins.cache.shared``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from fastplug.config import Settings
from fastplug.core import (
    CheckError,
    CheckMessage,
    CheckWarning,
    HealthCheck,
    MiddlewareSpec,
    PluginInfo,
    Services,
    hookimpl,
)
from fastplug.plugins.cache.api import SERVICE, STATS
from fastplug.plugins.cache.settings import CacheSettings

SHARED_ENV = "FASTPLUG_CACHE_SHARED"  # fastplug.plugins.cache.shared.ENV, without importing it


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="cache", settings=CacheSettings, after=("redis",), description="response caching on memory or Redis"
    )


@hookimpl
def register_middleware(settings: Settings) -> Sequence[MiddlewareSpec]:
    from fastplug.plugins.cache.middleware import CacheMiddleware
    from fastplug.plugins.compression.api import offered_codings

    # Outside compression (200): a hit skips gzip too; inside metrics/timing (100). At the
    # edge: a hit skips FastAPI's own per-request entry as well. Keyed by the coding
    # compression will pick, negotiated by the same parser.
    conf = settings.section("cache", CacheSettings)
    kwargs = {"conf": conf, "codings": offered_codings(settings)}
    return [MiddlewareSpec("cache", CacheMiddleware, kwargs, priority=150, edge=True)]


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
                client,
                conf.key_prefix,
                conf.op_timeout,
                conf.breaker_failures,
                conf.breaker_cooldown,
                conf.retry_interval,
                conf.max_keys_per_route,
            )
        elif shared_path := os.environ.get(SHARED_ENV):  # a worker of serve --workers N
            from fastplug.plugins.cache.shared import SharedGenerations, SharedMemoryBackend

            try:
                shared = SharedGenerations(shared_path)
            except OSError as exc:
                raise RuntimeError(
                    f"[cache] cannot map the generations shared by the workers ({exc}); use backend = 'redis',"
                    " or one worker"
                ) from None
            backend = SharedMemoryBackend(conf.max_entries, conf.max_bytes, shared, conf.max_keys_per_route)
        else:
            backend = MemoryBackend(conf.max_entries, conf.max_bytes, conf.max_keys_per_route)
        cache = Cache(conf, backend, routes_of(app))
        try:
            yield {SERVICE: cache, STATS: cache.stats}
        finally:
            await cache.close()

    return run()


async def _health(services: Services) -> dict[str, Any]:
    """Redis: an open circuit fails at once (no network call), else one PING under ``op_timeout``
    (outside the breaker: probes neither open nor close it)."""
    cache = services.require(SERVICE)
    backend = cache.backend
    detail: dict[str, Any] = {"backend": type(backend).__name__, **cache.stats.as_dict()}
    if hasattr(backend, "open_until"):
        import asyncio
        import time

        from fastplug.plugins.cache.backends import BackendUnavailable

        if backend.open_until > time.monotonic():
            raise BackendUnavailable("circuit open")
        try:
            async with asyncio.timeout(backend.op_timeout):
                await backend.client.ping()
        except TimeoutError:
            raise BackendUnavailable(f"Redis timed out after {backend.op_timeout:g}s (op_timeout)") from None
        detail["circuit"] = "closed"
    return detail


@hookimpl
def register_health_checks(settings: Settings) -> Sequence[HealthCheck]:
    # Critical only when the cache fails closed: failing open, requests bypass a broken cache.
    return [HealthCheck("cache", _health, critical=not settings.section("cache", CacheSettings).fail_open)]


@hookimpl(optionalhook=True)
def register_metrics(registry: Any, runtime: Any) -> None:
    """Hit/miss/stale/bypass counters and backend errors (metrics plugin)."""
    from fastplug.plugins.cache.metrics import CacheCollector

    registry.register(CacheCollector(runtime.services))


@hookimpl
def serve_starting(settings: Settings, workers: int) -> None:
    """Memory backend, several workers: the generations file they share (or a one-line refusal)."""
    if settings.section("cache", CacheSettings).backend == "memory":
        from fastplug.plugins.cache.shared import prepare

        prepare(workers)


@hookimpl
def check(settings: Settings) -> Sequence[CheckMessage]:
    conf = settings.section("cache", CacheSettings)
    if conf.backend != "redis":
        return _check_memory(settings.core.server.workers)
    redis_conf = settings.sections.get("redis")
    if redis_conf is None or getattr(redis_conf, "url", None) is None:
        return [
            CheckError(
                "[cache] backend = 'redis' but Redis is not configured",
                "cache.E001",
                "enable the redis plugin and set [redis] url, or use backend = 'memory'",
            )
        ]
    return _check_eviction(str(redis_conf.url), getattr(redis_conf, "sentinel", None))


EVICTING = (
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-ttl",
    "volatile-random",
)
"""Policies that make room (every entry has a ttl, so volatile-* evict entries too; the README
says why allkeys-lru is the one to choose)."""


def _check_eviction(url: str, sentinel: Any = None) -> list[CheckMessage]:
    """Warn when the Redis the cache writes to has no memory bound or does not evict: then
    nothing but the ttl bounds the cache (or writes fail once it is full). Says nothing when
    Redis does not answer (the redis plugin's checks report that) or hides its settings.
    With ``[redis.sentinel]``, the master the sentinels name is the one asked."""
    import redis

    from fastplug.core import mask_url

    try:
        from redis.connection import parse_url

        options = {**parse_url(url), "socket_connect_timeout": 1.0, "socket_timeout": 1.0}
        if sentinel is not None:  # the url's host is the master's name: ask the sentinels where it is
            from redis.sentinel import Sentinel

            password = sentinel.password.get_secret_value() if sentinel.password is not None else None
            manager = Sentinel(
                sentinel.addresses(),
                sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "password": password},
            )
            options["host"], options["port"] = manager.discover_master(sentinel.master)
        pool = redis.ConnectionPool(**options)
        client = redis.Redis(connection_pool=pool)
        try:
            memory = client.info("memory")
        finally:
            client.close()
            pool.disconnect()
    except (redis.RedisError, OSError, ValueError):
        return []
    limit, policy = memory.get("maxmemory"), memory.get("maxmemory_policy")
    where = mask_url(url)
    if limit == 0:
        return [
            CheckWarning(
                f"[cache] backend = 'redis': the Redis at {where} has no maxmemory, so nothing but the ttl bounds"
                " the cache (many distinct query strings fill it)",
                "cache.W002",
                "give the cache a Redis of its own with maxmemory and maxmemory-policy allkeys-lru,"
                " and/or lower [cache] max_keys_per_route",
            )
        ]
    if policy is not None and policy not in EVICTING:
        return [
            CheckWarning(
                f"[cache] backend = 'redis': the Redis at {where} has maxmemory-policy {policy}: once it is full,"
                " cache writes fail instead of evicting old entries",
                "cache.W003",
                "set maxmemory-policy allkeys-lru on that Redis (a Redis of the cache's own)",
            )
        ]
    return []


def _check_memory(workers: int) -> list[CheckMessage]:
    """Several workers on the memory backend: each keeps its own entries."""
    if workers <= 1:
        return []
    from fastplug.plugins.cache.shared import probe

    problem = probe()
    if problem is not None:
        return [
            CheckError(
                f"[cache] backend = 'memory' with [server] workers = {workers}, and shared memory cannot be set up"
                f" ({problem}): serve would refuse to start",
                "cache.E002",
                "use backend = 'redis', or workers = 1",
            )
        ]
    return [
        CheckWarning(
            f"[cache] backend = 'memory' with [server] workers = {workers}: each worker keeps its own entries;"
            " `manage.py serve` shares invalidations between them (shared memory), but served any other way"
            " (gunicorn or uvicorn --workers directly) a worker serves what another worker's writes changed"
            " until the ttl",
            "cache.W001",
            "serve with manage.py serve, or use backend = 'redis' (entries shared by every process)",
        )
    ]
