"""The db plugin's lifespan: engine, sessions, raw pool, startup migrations; health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from config.settings import Settings
from core.db import ENGINE, QUERIES, RAW_POOL, SESSIONMAKER
from core.manager import one_line
from core.runtime import Runtime
from core.services import Services
from plugins.db.engine import QueryCounter, create_engine, create_raw_pool, pool_stats
from plugins.db.settings import DbSettings

log = logging.getLogger("fastplug.db")
POOL_STATS = "db.pool_stats"


def _migrate(settings: Settings, app: FastAPI, connection: Any) -> None:
    from plugins.db.migrations import alembic_config, upgrade

    upgrade(alembic_config(settings, Runtime.of(app).plugins, connection))


@asynccontextmanager
async def run(app: FastAPI, settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Create the engine (and raw pool), migrate SQLite, yield the services, dispose all."""
    conf = settings.section("db", DbSettings)
    Runtime.of(app).plugins.call_each("register_models")
    counter = QueryCounter()
    engine = create_engine(conf, counter)
    raw_pool = None
    try:
        is_sqlite = engine.dialect.name == "sqlite"
        if conf.auto_migrate or (conf.auto_migrate is None and is_sqlite):
            async with engine.begin() as connection:
                await connection.run_sync(partial(_migrate, settings, app))
        raw_pool = await create_raw_pool(conf)
        services: dict[str, Any] = {
            ENGINE: engine,
            SESSIONMAKER: async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
            QUERIES: counter,
            POOL_STATS: partial(pool_stats, engine),
        }
        if raw_pool is not None:  # PostgreSQL only; without it RawPool answers 503
            services[RAW_POOL] = raw_pool
        yield services
    finally:
        if raw_pool is not None:
            await raw_pool.close()
        await engine.dispose()


async def ping(services: Services) -> dict[str, int]:
    """``SELECT 1`` through the pool (and the raw pool); the pool figures as detail."""
    engine = services.require(ENGINE, AsyncEngine)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    raw = services.get(RAW_POOL)
    if raw is not None:
        async with raw.acquire() as connection:
            await connection.fetchval("SELECT 1")
    return pool_stats(engine)


async def connectivity_problem(conf: DbSettings) -> str | None:
    """Why the database cannot be reached, or ``None`` (for ``manage.py check``)."""
    try:
        url = make_url(conf.url)
    except Exception as exc:
        return f"invalid url: {one_line(exc)}"
    if url.get_backend_name() == "sqlite":
        return None
    engine = create_engine(conf.model_copy(update={"pool_size": 1, "max_overflow": 0}), QueryCounter())
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return one_line(exc)
    finally:
        await engine.dispose()
    return None
