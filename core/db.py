"""The database contract plugins build on: one declarative ``Base`` and typed dependencies.

The ``db`` plugin owns the engine, pools and migrations and provides them as services;
other plugins import only this module (never the db plugin's internals)::

    from core.db import Base, DbSession

    class Widget(Base):
        __tablename__ = "widgets"
        id: Mapped[int] = mapped_column(primary_key=True)

    @router.get("/widgets/{widget_id}")
    async def get_widget(widget_id: int, session: DbSession) -> WidgetOut: ...

Relationships (and their ``backref`` side) default to ``lazy="raise"``: touching an unloaded
relationship is an error, not a hidden query per row (N+1). Load what a route needs with
``selectinload``/``joinedload``, or give another strategy (``"selectin"``, ``"joined"``,
``"immediate"``...); ``lazy="select"`` is treated as the default and becomes ``"raise"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import MetaData
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, RelationshipProperty
from starlette.requests import HTTPConnection

from core.services import ServiceMissing, service

ENGINE = "db.engine"
SESSIONMAKER = "db.sessionmaker"
READ_ENGINE = "db.read_engine"
GATE = "db.gate"
RAW_POOL = "db.raw_pool"
QUERIES = "db.queries"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The one declarative base; every plugin's tables join ``Base.metadata``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for value in list(vars(cls).values()):
            if not isinstance(value, RelationshipProperty):
                continue
            if value.lazy == "select":
                # the default "select" is how N+1 queries happen (set both, as SQLAlchemy's
                # own declarative scan does when it changes a relationship's strategy)
                value.lazy = "raise"
                value.strategy_key = (("lazy", "raise"),)
            if isinstance(value.backref, str):  # the generated reverse side too
                value.backref = (value.backref, {"lazy": "raise"})
            elif isinstance(value.backref, tuple) and "lazy" not in value.backref[1]:
                value.backref = (value.backref[0], {**value.backref[1], "lazy": "raise"})
        super().__init_subclass__(**kwargs)


class FairGate:
    """First come, first served admission to the engine's pool, for request dependencies.

    SQLAlchemy's async pool queue lets a request that arrives just as a connection is
    returned take it ahead of requests already waiting (``asyncio.Queue`` barging): under
    load above the pool size some requests then wait seconds while others pass. The gate
    holds ``pool_size + max_overflow`` places and hands them out in arrival order, so the
    pool itself rarely has waiters. Waiting is bounded by ``[db] pool_timeout`` (503). Work
    outside requests (the outbox relay, health checks, tasks in the embedded worker) takes
    connections without the gate: at a full pool a request may then wait in the pool's own
    queue too, up to ``pool_timeout`` more.
    """

    __slots__ = ("places", "timeout")

    def __init__(self, places: int, timeout: float) -> None:
        self.places = asyncio.Semaphore(places)  # FIFO: a released place goes to the oldest waiter
        self.timeout = timeout

    async def __aenter__(self) -> None:
        places = self.places
        if not places.locked():
            await places.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(self.timeout):
                await places.acquire()
        except TimeoutError:
            raise sa_exc.TimeoutError(f"no database connection within {self.timeout} s") from None

    async def __aexit__(self, *exc: object) -> None:
        self.places.release()


class _NoGate:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


NO_GATE = _NoGate()


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
per request here; rows are ``Row`` objects, which ``core.serialize`` reads with
``from_attributes=True``."""

DbEngine = service(ENGINE, AsyncEngine)
"""The app's ``AsyncEngine``."""


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
