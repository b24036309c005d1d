"""The db plugin's lifespan: engine, sessions, raw pool, startup migrations; health."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fastplug.config import Settings
from fastplug.core import Plugins, Runtime, Services
from fastplug.plugins.db.api import (
    ENGINE,
    GATE,
    POOL_STATS,
    QUERIES,
    RAW_POOL,
    READ_ENGINE,
    READER,
    REPLICAS,
    SESSIONMAKER,
    BoundedPool,
    FairGate,
    Reader,
)
from fastplug.plugins.db.engine import (
    QueryCounter,
    create_engine,
    create_raw_pool,
    db_settings,
    is_postgres,
    pool_stats,
)
from fastplug.plugins.db.errors import describe_error
from fastplug.plugins.db.replicas import Replica, Replicas, replica_name
from fastplug.plugins.db.sessions import checked_session_class
from fastplug.plugins.db.settings import DbSettings

log = logging.getLogger("fastplug.db")


MIGRATED = "FASTPLUG_DB_MIGRATED"  # set by `serve` once it migrated before forking workers


def should_migrate(conf: DbSettings) -> bool:
    """``auto_migrate``, or by default: SQLite (the embedded default) only."""
    if conf.auto_migrate is not None:
        return conf.auto_migrate
    return make_url(conf.url).get_backend_name() == "sqlite"


def _migrate(settings: Settings, plugins: Plugins, connection: Any) -> None:
    from fastplug.plugins.db.migrations import upgrade_all

    upgrade_all(settings, plugins, connection)


async def migrate(engine: AsyncEngine, settings: Settings, plugins: Plugins) -> None:
    """Upgrade every plugin's migrations (then the app's) to their heads, in one transaction on ``engine``."""
    async with engine.begin() as connection:
        await connection.run_sync(partial(_migrate, settings, plugins))


def migrate_before_fork(settings: Settings, plugins: Plugins) -> None:
    """Migrate once in the serving process so that workers started together do not race."""
    conf = db_settings(settings)
    if not should_migrate(conf):
        return

    async def run_once() -> None:
        plugins.call_each("register_models")
        engine = create_engine(conf, QueryCounter())
        try:
            await migrate(engine, settings, plugins)
        finally:
            await engine.dispose()

    asyncio.run(run_once())
    os.environ[MIGRATED] = "1"


@asynccontextmanager
async def run(app: FastAPI, settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Create the engine (and raw pool), migrate SQLite, yield the services, dispose all."""
    conf = db_settings(settings)
    plugins = Runtime.of(app).plugins
    plugins.call_each("register_models")
    counter = QueryCounter()
    engine = create_engine(conf, counter)
    raw_pool = None
    stack = AsyncExitStack()
    try:
        if should_migrate(conf) and os.environ.get(MIGRATED) != "1":
            await migrate(engine, settings, plugins)
        raw_pool = await create_raw_pool(conf)
        read_engine = read_engine_of(engine, conf)  # shares the pool
        # PostgreSQL: a COMMIT whose answer is lost is looked up, never answered as failed if it was not
        postgres = is_postgres(make_url(conf.url))
        checked = postgres and conf.resolve_lost_commits
        session_class = checked_session_class(counter.add, conf.pool_timeout) if checked else AsyncSession
        gate = FairGate(conf.pool_size + conf.max_overflow, conf.pool_timeout)
        pooled = conf.transaction_pooler
        bounded = BoundedPool(raw_pool, conf.pool_timeout, pooled) if raw_pool is not None else None
        services: dict[str, Any] = {
            ENGINE: engine,
            READ_ENGINE: read_engine,
            SESSIONMAKER: async_sessionmaker(engine, class_=session_class, expire_on_commit=False),
            GATE: gate,
            # through a transaction pooler, ReadQuery takes SQLAlchemy's path (unique statement names)
            READER: Reader(None if pooled else bounded, read_engine, gate, counter.add),
            QUERIES: counter,
            POOL_STATS: partial(pool_stats, engine),
        }
        if bounded is not None:  # PostgreSQL only; without it RawPool answers 503
            services[RAW_POOL] = bounded
        if conf.read_urls:
            replicas = await start_replicas(conf, counter)
            services[REPLICAS] = services[READER].replicas = replicas
            stack.push_async_callback(stop_replicas, replicas, conf.pool_timeout)
            watcher = asyncio.create_task(replicas.watch(read_engine), name="fastplug-db-replicas")
            stack.callback(watcher.cancel)
        yield services
    finally:
        await stack.aclose()
        try:
            if raw_pool is not None:
                await close_raw_pool(raw_pool, conf.pool_timeout)
        finally:
            await engine.dispose()


async def close_raw_pool(pool: Any, limit: float) -> None:
    """Close an asyncpg pool within ``limit`` seconds, else terminate its connections."""
    try:  # a connection still held would make close() wait forever
        await asyncio.wait_for(pool.close(), limit)
    except Exception as exc:  # timed out, or the database is gone: drop them
        if not isinstance(exc, TimeoutError):
            log.warning("plugin 'db' could not close a raw pool cleanly: %s", describe_error(exc))
        pool.terminate()


def read_engine_of(engine: AsyncEngine, conf: DbSettings) -> AsyncEngine:
    """The engine the read paths use: autocommit (no BEGIN/COMMIT round trips), except through
    a transaction pooler, where a statement outside a transaction may be parsed on one server
    connection and run on another."""
    return engine if conf.transaction_pooler else engine.execution_options(isolation_level="AUTOCOMMIT")


async def start_replicas(conf: DbSettings, counter: QueryCounter) -> Replicas:
    """An engine and a raw pool per ``[db] read_urls`` entry; none connects before first use
    (a replica down at startup is left out by the first lag check, not a startup failure)."""
    replicas = []
    for url in conf.read_urls:
        own = conf.model_copy(update={"url": url, "raw_pool": conf.raw_pool.model_copy(update={"min_size": 0})})
        engine = create_engine(own, counter)
        # through a transaction pooler, ReadQuery takes SQLAlchemy's path (as on the primary): no raw pool
        raw = None if conf.transaction_pooler else await create_raw_pool(own)
        replicas.append(
            Replica(
                name=replica_name(url),
                engine=engine,
                read_engine=read_engine_of(engine, conf),
                raw=None if raw is None else BoundedPool(raw, conf.pool_timeout),
                raw_pool=raw,
            )
        )
    return Replicas(replicas, conf.replica_max_lag, conf.replica_retry, conf.replica_check_interval)


async def stop_replicas(replicas: Replicas, limit: float) -> None:
    """Close every replica's raw pool (terminated when it will not close in ``limit`` seconds) and engine."""
    for replica in replicas.replicas:
        if replica.raw_pool is not None:
            await close_raw_pool(replica.raw_pool, limit)
        await replica.engine.dispose()


async def ping(services: Services) -> dict[str, int]:
    """``SELECT 1`` through the pool (and the raw pool); the pool figures as detail, and how
    many replicas are in use (reads fall back to the primary: never a failure here)."""
    engine = services.require(ENGINE, AsyncEngine)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    raw = services.get(RAW_POOL)
    if raw is not None:
        async with raw.acquire() as connection:
            await connection.fetchval("SELECT 1")
    figures = pool_stats(engine)
    replicas: Replicas | None = services.get(REPLICAS)
    if replicas is not None:
        figures["replicas"] = len(replicas.replicas)
        figures["replicas_usable"] = sum(1 for r in replicas.replicas if not r.reason)
    return figures
