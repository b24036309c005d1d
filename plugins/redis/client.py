"""Build and close the shared client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fastplug.plugins.redis.api import CLIENT
from fastplug.plugins.redis.settings import RedisSettings


def create_client(conf: RedisSettings) -> Redis:
    """A client on a :class:`BlockingConnectionPool` (waits ``pool_timeout`` for a free
    connection instead of opening unbounded ones); nothing connects until first use."""
    assert conf.url is not None
    retry = Retry(ExponentialBackoff(cap=conf.retry.backoff_cap, base=conf.retry.backoff_base), conf.retry.retries)
    pool = BlockingConnectionPool.from_url(
        conf.url,
        max_connections=conf.max_connections,
        timeout=conf.pool_timeout,
        socket_timeout=conf.socket_timeout,
        socket_connect_timeout=conf.socket_connect_timeout,
        health_check_interval=conf.health_check_interval,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        client_name=conf.client_name,
    )
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
    """Close the client and every connection of its pool."""
    await client.aclose()
    await client.connection_pool.aclose()
