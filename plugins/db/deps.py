"""Typed request dependencies on the db plugin's services (sessions, connections, pools)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from fastplug.core import ServiceMissing, service
from fastplug.plugins.db.gate import NO_GATE
from fastplug.plugins.db.keys import ENGINE, GATE, RAW_POOL, READ_ENGINE, SESSIONMAKER
from fastplug.plugins.db.rawpool import BoundedPool


async def _session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    try:
        maker: async_sessionmaker[AsyncSession] = conn.scope["state"][SESSIONMAKER]
    except KeyError:
        raise ServiceMissing("no database session: is the db plugin enabled and started?") from None
    async with conn.scope["state"].get(GATE, NO_GATE), maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


DbSession = Annotated[AsyncSession, Depends(_session, scope="function")]
"""An ``AsyncSession`` per request (``expire_on_commit=False``): committed when the handler
returns, rolled back if it raises, closed before the response is sent."""


async def _read_session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    try:
        maker: async_sessionmaker[AsyncSession] = conn.scope["state"][SESSIONMAKER]
    except KeyError:
        raise ServiceMissing("no database session: is the db plugin enabled and started?") from None
    async with conn.scope["state"].get(GATE, NO_GATE), maker() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


DbReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
"""A session for handlers that only read: autocommit, so no BEGIN/COMMIT round trips
around the queries (one round trip for one query). Writes through it are not atomic."""


async def _read_connection(conn: HTTPConnection) -> AsyncIterator[AsyncConnection]:
    try:
        engine: AsyncEngine = conn.scope["state"][READ_ENGINE]
    except KeyError:
        raise ServiceMissing("no database connection: is the db plugin enabled and started?") from None
    async with conn.scope["state"].get(GATE, NO_GATE), engine.connect() as connection:
        yield connection


DbReadConnection = Annotated[AsyncConnection, Depends(_read_connection, scope="function")]
"""An autocommit SQLAlchemy ``AsyncConnection`` from the engine's pool, for hot read paths
with Core statements (``select(User.__table__.c...)``): no ``AsyncSession``, no identity map,
no ORM objects, one round trip per statement. About a third cheaper than ``DbReadSession``
per request here; rows are ``Row`` objects, which ``fastplug.core.serializer`` reads with
``from_attributes=True``."""

DbEngine = service(ENGINE, AsyncEngine)
"""The app's ``AsyncEngine``."""


RawPool = service(RAW_POOL, BoundedPool)
"""The raw asyncpg pool for hot paths, acquires bounded by ``[db] pool_timeout``
(PostgreSQL only; 503 when there is none)."""


async def _raw_connection(conn: HTTPConnection) -> AsyncIterator[Any]:
    try:
        pool: BoundedPool = conn.scope["state"][RAW_POOL]
    except KeyError:
        raise ServiceMissing("no raw database pool: is the db plugin enabled with a PostgreSQL url?") from None
    # a TimeoutError here is answered 503 + Retry-After by core, never a hang
    async with pool.acquire() as connection:
        yield connection


RawConnection = Annotated[Any, Depends(_raw_connection, scope="function")]
"""An ``asyncpg`` connection from the raw pool for this request (released before the
response is sent); 503 when none is free within ``[db] pool_timeout``."""
