"""tasks plugin: Celery from settings.toml, tasks from every plugin, no lost tasks.

Services: ``tasks`` (a :class:`~fastplug.plugins.tasks.queue.TaskQueue`: ``await tasks.enqueue(session,
"orders.confirm", order_id)`` writes an outbox row in the request's transaction; ``await
tasks.delay(...)`` publishes now, best-effort), ``tasks.celery`` (the Celery app) and
``tasks.metrics`` (sent, succeeded, failed, retried, outbox backlog). Plugins define tasks
with the ``register_tasks(celery_app)`` hook. The embedded default (``memory://``) runs a
worker in the server process; ``manage.py worker`` runs a real one. celery is imported only
when the plugin is enabled and an app is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import click
import pluggy
from fastapi import FastAPI

from fastplug.config import Settings
from fastplug.core import HealthCheck, PluginInfo, Services, hookimpl
from fastplug.plugins.tasks import hookspecs
from fastplug.plugins.tasks.settings import TasksSettings

MIGRATIONS = Path(__file__).with_name("migrations")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="tasks",
        settings=TasksSettings,
        after=("db", "redis"),
        description="Celery tasks from every plugin: embedded worker, manage.py worker, transactional outbox",
    )


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def lifespan(app: FastAPI, settings: Settings, services: Services) -> AbstractAsyncContextManager[dict[str, Any]]:
    from fastplug.plugins.tasks.service import run

    return run(app, settings, services)


@hookimpl
def register_health_checks(settings: Settings) -> Sequence[HealthCheck]:
    from fastplug.plugins.tasks.service import health
    from fastplug.plugins.tasks.settings import outbox_enabled

    # With the outbox, enqueueing only writes a row: requests succeed while the broker is
    # down (delivered later), so the broker is not critical. Without it, publishes fail.
    critical = not outbox_enabled(settings.section("tasks", TasksSettings), settings.plugins)
    return [HealthCheck("tasks", health, critical=critical)]


@hookimpl
def register_exception_handlers() -> dict[type[BaseException], Any]:
    """A broker that is down or refuses us, on a route that publishes: 503 + Retry-After."""
    from fastplug.plugins.tasks.errors import BrokerUnavailable, broker_unavailable

    return {BrokerUnavailable: broker_unavailable}


@hookimpl
def check(settings: Settings) -> Any:
    from fastplug.plugins.tasks.service import checks

    return checks(settings)


@hookimpl
def register_commands() -> Sequence[click.Command]:
    from fastplug.plugins.tasks.cli import beat_command, worker_command

    return [worker_command, beat_command]


@hookimpl(optionalhook=True)
def register_models() -> Sequence[type]:
    """The outbox table (db plugin)."""
    from fastplug.plugins.tasks.models import OutboxMessage

    return [OutboxMessage]


@hookimpl(optionalhook=True)
def register_migrations() -> Path:
    """The outbox table's Alembic branch, ``tasks`` (db plugin)."""
    return MIGRATIONS


@hookimpl(optionalhook=True)
def register_metrics(registry: Any, runtime: Any) -> None:
    """``tasks_*_total`` counters and ``tasks_outbox_backlog`` (metrics plugin)."""
    from fastplug.plugins.tasks.prometheus import TaskCollector

    registry.register(TaskCollector(runtime))
