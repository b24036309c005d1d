"""db plugin: SQLAlchemy async engine + asyncpg pool, per-request sessions, Alembic.

Services: ``db.engine``, ``db.sessionmaker``, ``db.raw_pool`` (PostgreSQL), ``db.queries``
(a :class:`~fastplug.plugins.db.engine.QueryCounter`), ``db.pool_stats`` (a callable). Handlers use
``fastplug.plugins.db.api.DbSession`` / ``DbEngine`` / ``RawPool``; models subclass ``fastplug.plugins.db.api.Base``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import click
import pluggy
from fastapi import FastAPI

from fastplug.config import Settings
from fastplug.core import HealthCheck, MiddlewareSpec, PluginInfo, Plugins, hookimpl
from fastplug.plugins.db import hookspecs
from fastplug.plugins.db.settings import DbSettings


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="db",
        settings=DbSettings,
        description="SQLAlchemy async engine and asyncpg pool, sessions per request, Alembic migrations",
    )


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def lifespan(app: FastAPI, settings: Settings) -> AbstractAsyncContextManager[dict[str, Any]]:
    from fastplug.plugins.db.runtime import run

    return run(app, settings)


@hookimpl
def register_exception_handlers(settings: Settings) -> dict[type[BaseException], Any]:
    from fastplug.plugins.db.errors import exception_handlers

    return exception_handlers(settings.section("db", DbSettings).retry_after)


@hookimpl
def register_middleware(settings: Settings) -> Sequence[MiddlewareSpec]:
    if not settings.section("db", DbSettings).query_count_header:
        return []
    from fastplug.plugins.db.queries import QueryCountHeader

    return [MiddlewareSpec("db.query_count", QueryCountHeader, priority=400)]


@hookimpl
def register_health_checks(settings: Settings) -> Sequence[HealthCheck]:
    from fastplug.plugins.db.runtime import ping

    return [HealthCheck("db", ping)]


@hookimpl
def check(settings: Settings) -> Any:
    """The database answers (``db.E001``); every worker's pools fit in its server's
    ``max_connections`` (``db.W001``, PostgreSQL)."""
    from fastplug.plugins.db.checks import checks

    return checks(settings)


@hookimpl(optionalhook=True)
def register_metrics(registry: Any, runtime: Any) -> Any:
    """Pool figures and queries per request for the metrics plugin (see plugins/db/metrics.py)."""
    from fastplug.plugins.db.metrics import register

    return register(registry, runtime.services)


@hookimpl
def serve_starting(settings: Settings, plugins: Plugins, workers: int) -> None:
    if workers > 1:  # workers starting together must not race to create the schema
        from fastplug.plugins.db.runtime import migrate_before_fork

        migrate_before_fork(settings, plugins)


@hookimpl
def register_commands() -> Sequence[click.Command]:
    from fastplug.plugins.db.cli import db_group

    return [db_group]
