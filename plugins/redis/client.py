"""Build and close the shared client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fastplug.plugins.redis.api import CLIENT
from fastplug.plugins.redis.settings import RedisSettings


class SentinelBlockingConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool (connections to the master the sentinels name) that waits for a
    free connection like :class:`BlockingConnectionPool` instead of failing when all are busy."""


def create_client(conf: RedisSettings) -> Redis:
    """A client on a :class:`BlockingConnectionPool` (waits ``pool_timeout`` for a free
    connection instead of opening unbounded ones), through the sentinels when
    ``[redis.sentinel]`` is set; nothing connects until first use."""
    assert conf.url is not None
    retry = Retry(ExponentialBackoff(cap=conf.retry.backoff_cap, base=conf.retry.backoff_base), conf.retry.retries)
    options: dict[str, Any] = {
        "max_connections": conf.max_connections,
        "timeout": conf.pool_timeout,
        "socket_timeout": conf.socket_timeout,
        "socket_connect_timeout": conf.socket_connect_timeout,
        "health_check_interval": conf.health_check_interval,
        "retry": retry,
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "client_name": conf.client_name,
    }
    if conf.sentinel is None:
        return Redis(connection_pool=BlockingConnectionPool.from_url(conf.url, **options))
    sentinel = conf.sentinel
    master = parse_url(conf.url)  # password, username, db (the host is the master's name)
    master.pop("host", None)
    master.pop("port", None)
    password = sentinel.password.get_secret_value() if sentinel.password is not None else None
    manager = Sentinel(
        sentinel.addresses(),
        sentinel_kwargs={
            "socket_timeout": sentinel.socket_timeout,
            "socket_connect_timeout": sentinel.socket_timeout,
            "password": password,
        },
    )
    pool = SentinelBlockingConnectionPool(sentinel.master, manager, **master, **options)
    return Redis(connection_pool=pool)


@asynccontextmanager
async def run(conf: RedisSettings) -> AsyncIterator[dict[str, Any]]:
    """Yield ``{"redis.client": client}`` (nothing without a url); close it all at exit."""
    if conf.url is None:
        yield {}
        return
    client = create_client(conf)
    try:
        yield {CLIENT: client}
    finally:
        await close(client)


async def close(client: Redis) -> None:
    """Close the client, every connection of its pool, and its sentinel clients."""
    await client.aclose()
    pool = client.connection_pool
    await pool.aclose()
    for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
        await sentinel.aclose()
