"""Alembic environment for fastplug: the app's settings, plugins and ``Base.metadata``.

Run through ``python manage.py db ...`` (or at startup for SQLite), which passes the
loaded settings and plugins in ``config.attributes``; a connection may be passed too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import Connection, make_url, pool
from sqlalchemy.ext.asyncio import create_async_engine

from fastplug.plugins.db.api import Base
from fastplug.plugins.db.engine import db_settings, ensure_sqlite_dir
from fastplug.plugins.db.migrations import load_models

config = context.config
settings = config.attributes["fastplug.settings"]
plugins = config.attributes["fastplug.plugins"]
load_models(plugins)
target_metadata = Base.metadata


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Never propose dropping a table no enabled plugin declares (it may be a disabled one's)."""
    return not (type_ == "table" and reflected and compare_to is None)


def run_with(connection: Connection) -> None:
    """Run the migrations on an open connection."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    """Connect with the app's URL (NullPool: one connection, closed after)."""
    url = make_url(db_settings(settings).url)
    ensure_sqlite_dir(url)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=db_settings(settings).url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    run_with(shared)
else:
    asyncio.run(run_async())
