"""Alembic environment for one fastplug branch: a plugin's migrations (or the app's own), with
that branch's version table, comparing only the tables it owns.

Run through ``python manage.py db ...`` (or at startup), which passes the loaded settings,
plugins and branch in ``config.attributes``, and usually an open connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import Connection, make_url, pool
from sqlalchemy.ext.asyncio import create_async_engine

from fastplug.plugins.db.api import Base
from fastplug.plugins.db.branches import Branch, enabled_branches, table_owners
from fastplug.plugins.db.engine import db_settings, ensure_sqlite_dir
from fastplug.plugins.db.settings import APP_BRANCH

config = context.config
settings = config.attributes["fastplug.settings"]
plugins = config.attributes["fastplug.plugins"]
branch: Branch = config.attributes["fastplug.branch"]
owners = table_owners(plugins, {b.name for b in enabled_branches(settings, plugins) if b.name != APP_BRANCH})
target_metadata = Base.metadata


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Only this branch's tables (a plugin's models; for the app, the models of enabled plugins
    without migrations), and never propose dropping a table no enabled plugin declares."""
    if type_ != "table":
        return True
    if reflected and compare_to is None:
        return False
    return owners.get(name or "") == branch.name


def run_with(connection: Connection) -> None:
    """Run the migrations on an open connection."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        version_table=branch.version_table,
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
        version_table=branch.version_table,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    run_with(shared)
else:
    asyncio.run(run_async())
