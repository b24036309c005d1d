"""The raw asyncpg pool, every acquire bounded in time."""

from __future__ import annotations

from typing import Any


class BoundedPool:
    """The raw ``asyncpg.Pool`` with every acquire bounded by ``[db] pool_timeout``: an
    exhausted pool raises ``TimeoutError`` (answered 503 + Retry-After by core), never hangs.

    ``fetch``/``fetchrow``/``fetchval``/``execute`` take a connection for one statement,
    like the pool's own; ``acquire()`` for several; ``pool`` is the asyncpg pool itself.
    """

    __slots__ = ("__weakref__", "pool", "timeout")

    def __init__(self, pool: Any, timeout: float) -> None:
        self.pool, self.timeout = pool, timeout

    def acquire(self) -> Any:
        """``async with pool.acquire() as connection:``."""
        return self.pool.acquire(timeout=self.timeout)

    async def fetch(self, query: str, *args: Any) -> Any:
        async with self.pool.acquire(timeout=self.timeout) as connection:
            return await connection.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        async with self.pool.acquire(timeout=self.timeout) as connection:
            return await connection.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.pool.acquire(timeout=self.timeout) as connection:
            return await connection.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.pool.acquire(timeout=self.timeout) as connection:
            return str(await connection.execute(query, *args))
