"""The raw asyncpg pool, every acquire bounded in time, every failure to get a connection a 503."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastplug.core import one_line
from fastplug.plugins.db.errors import BUSY, DatabaseUnavailable, driver_os_error, unavailable

log = logging.getLogger("fastplug.db")


class _Acquired:
    """``async with``: a connection from the pool, or :class:`DatabaseUnavailable` (no
    connection within the timeout, the server refusing, starting or stopping, a wrong
    password, too many clients...); returned to the pool at the end, where a failure (a reset
    on a dead connection) is logged, never raised: the statements ran, their answer stands.
    A bare ``OSError`` asyncpg raised in the block leaves it as :class:`DatabaseUnavailable`
    too (asyncpg's own errors are classified by the db plugin's exception handlers)."""

    __slots__ = ("bounded", "connection", "transaction")

    def __init__(self, bounded: BoundedPool) -> None:
        self.bounded = bounded
        self.connection: Any = None
        self.transaction: Any = None

    async def __aenter__(self) -> Any:
        bounded = self.bounded
        try:
            # asyncio.timeout, not acquire(timeout=...): asyncpg's wait_for makes a task per acquire
            async with asyncio.timeout(bounded.timeout):
                self.connection = await bounded.pool.acquire()
        except TimeoutError as exc:
            raise DatabaseUnavailable(f"no raw connection within {bounded.timeout:g}s", BUSY) from exc
        except Exception as exc:
            down = unavailable(exc)
            if down is None:
                raise
            raise down from exc
        if bounded.in_transaction:  # through a transaction pooler: the server connection is ours until COMMIT
            self.transaction = self.connection.transaction()
            try:
                await self.transaction.start()
            except BaseException:
                await bounded.pool.release(self.connection, timeout=bounded.timeout)
                raise
        return self.connection

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.transaction is not None:
            try:
                if exc is None:
                    await self.transaction.commit()
                else:
                    await self.transaction.rollback()
            finally:
                self.transaction = None
                await self._release(exc)
            return
        await self._release(exc)

    async def _release(self, exc: BaseException | None) -> None:
        try:
            await self.bounded.pool.release(self.connection, timeout=self.bounded.timeout)
        except Exception as error:  # the pool terminated the connection; a new one replaces it
            log.warning("db: a raw connection could not be reset, dropped (%s)", one_line(error))
        if isinstance(exc, OSError) and (down := driver_os_error(exc)) is not None:  # a bare one of asyncpg's
            raise down from exc


class BoundedPool:
    """The raw ``asyncpg.Pool`` with every acquire bounded by ``[db] pool_timeout``: an
    exhausted or unreachable pool raises :class:`DatabaseUnavailable` (503 + Retry-After),
    never hangs.

    ``fetch``/``fetchrow``/``fetchval``/``execute`` take a connection for one statement,
    like the pool's own; ``acquire()`` for several; ``pool`` is the asyncpg pool itself
    (its own acquire has none of this).
    """

    __slots__ = ("__weakref__", "in_transaction", "pool", "timeout")

    def __init__(self, pool: Any, timeout: float, in_transaction: bool = False) -> None:
        self.pool, self.timeout = pool, timeout
        self.in_transaction = in_transaction
        """Each ``acquire()`` runs in a transaction (committed at its end, rolled back on an
        error): ``[db] transaction_pooler``, where a statement outside one may be parsed on one
        server connection and run on another."""

    def acquire(self) -> _Acquired:
        """``async with pool.acquire() as connection:``."""
        return _Acquired(self)

    async def fetch(self, query: str, *args: Any) -> Any:
        async with _Acquired(self) as connection:
            return await connection.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        async with _Acquired(self) as connection:
            return await connection.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with _Acquired(self) as connection:
            return await connection.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with _Acquired(self) as connection:
            return str(await connection.execute(query, *args))
