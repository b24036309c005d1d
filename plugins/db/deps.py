"""Typed request dependencies on the db plugin's services (sessions, connections, pools).

Each runs its teardown before the response is sent (``scope="function"``), so whatever it
raises is answered by the db plugin's exception handlers (503 + Retry-After when the
database is unavailable). Once a commit is acknowledged nothing after it (closing the
session, returning the connection) turns the answer into an error: that is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from fastplug.core import ServiceMissing, one_line, service
from fastplug.plugins.db.errors import reraise_os_error
from fastplug.plugins.db.gate import NO_GATE
from fastplug.plugins.db.keys import ENGINE, GATE, RAW_POOL, READ_ENGINE, REPLICAS, SESSIONMAKER
from fastplug.plugins.db.rawpool import BoundedPool
from fastplug.plugins.db.replicas import WRITER, Replicas, on_replica

log = logging.getLogger("fastplug.db")


def _maker(conn: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    try:
        return conn.scope["state"][SESSIONMAKER]  # type: ignore[no-any-return]
    except KeyError:
        raise ServiceMissing("no database session: is the db plugin enabled and started?") from None


async def _close(resource: AsyncSession | AsyncConnection) -> None:
    """Close (shielded, as ``async with`` does), logging a failure instead of raising: the
    connection is gone, the pool replaces it, the answer stands."""
    try:
        await asyncio.shield(resource.close())
    except Exception as exc:
        log.warning("db: closing a %s failed (%s)", type(resource).__name__, one_line(exc))


async def _session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    maker = _maker(conn)
    WRITER.set(True)  # this request reads its own writes: DbReader on the primary, not a replica
    async with conn.scope["state"].get(GATE, NO_GATE):
        session = maker()
        try:
            try:
                yield session
            except BaseException:
                try:
                    await session.rollback()
                except Exception as exc:  # the handler's error is the answer, not this one
                    log.debug("db: rollback failed (%s)", one_line(exc))
                raise
            await session.commit()
        except OSError as exc:
            reraise_os_error(exc)
        finally:
            await _close(session)


DbSession = Annotated[AsyncSession, Depends(_session, scope="function")]
"""An ``AsyncSession`` per request (``expire_on_commit=False``): committed when the handler
returns, rolled back if it raises, closed before the response is sent."""


async def _open_session(maker: async_sessionmaker[AsyncSession], engine: AsyncEngine) -> AsyncSession:
    """A session bound to ``engine`` with its connection taken (closed again if that fails)."""
    session = maker(bind=engine)
    try:
        await session.connection()
    except BaseException:
        await _close(session)
        raise
    return session


async def _read_session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    maker = _maker(conn)
    state = conn.scope["state"]
    primary: AsyncEngine = state[READ_ENGINE]  # autocommit, unless through a transaction pooler
    replicas: Replicas | None = state.get(REPLICAS)
    async with state.get(GATE, NO_GATE):
        try:
            if replicas is None:
                session = await _open_session(maker, primary)
            else:
                session = await on_replica(
                    replicas, conn.scope, lambda r: _open_session(maker, primary if r is None else r.read_engine)
                )
        except OSError as exc:
            reraise_os_error(exc)
        try:
            yield session
        except OSError as exc:
            reraise_os_error(exc)
        finally:
            await _close(session)


DbReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
"""A session for handlers that only read: autocommit, so no BEGIN/COMMIT round trips
around the queries (one round trip for one query). Writes through it are not atomic.
With ``[db] read_urls`` it reads on a replica, unless the route also takes ``DbSession``."""


async def _read_connection(conn: HTTPConnection) -> AsyncIterator[AsyncConnection]:
    state = conn.scope["state"]
    try:
        engine: AsyncEngine = state[READ_ENGINE]
    except KeyError:
        raise ServiceMissing("no database connection: is the db plugin enabled and started?") from None
    replicas: Replicas | None = state.get(REPLICAS)
    async with state.get(GATE, NO_GATE):
        try:
            if replicas is None:
                connection = await engine.connect().start()
            else:
                connection = await on_replica(
                    replicas, conn.scope, lambda r: (engine if r is None else r.read_engine).connect().start()
                )
        except OSError as exc:
            reraise_os_error(exc)
        try:
            yield connection
        except OSError as exc:
            reraise_os_error(exc)
        finally:
            await _close(connection)


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
    # no connection within pool_timeout, or none to be had: DatabaseUnavailable (503), never a hang
    async with pool.acquire() as connection:
        yield connection


RawConnection = Annotated[Any, Depends(_raw_connection, scope="function")]
"""An ``asyncpg`` connection from the raw pool for this request (released before the
response is sent); 503 when none is free within ``[db] pool_timeout``."""


def takes_write_session(route: Any) -> bool:
    """Whether ``route`` (an ``APIRoute``) depends on :data:`DbSession`, directly or through
    another dependency: its reads then run on the primary, whatever the order of its
    parameters (dependencies are solved in that order)."""
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is None:
            continue
        if dependant.call is _session:
            return True
        pending.extend(dependant.dependencies)
    return False
