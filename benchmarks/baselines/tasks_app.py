"""The tasks benchmark target: the real app from ``$FASTPLUG_SETTINGS`` (db + tasks on
PostgreSQL and RabbitMQ) plus a ``benchtasks`` plugin whose routes all insert one order row in
the request's transaction, then:

- ``GET /bench/task/none``: enqueue nothing;
- ``GET /bench/task/outbox``: ``await tasks.enqueue(session, ...)`` (an outbox row in the same
  transaction; the relay publishes it after the commit, in this process);
- ``GET /bench/task/delay``: ``await tasks.delay(...)`` (publish now, in a thread, with a timeout);
- ``GET /bench/task/blocking``: ``task.delay(...)`` straight on the event loop (the recipe's way).

``create()`` creates the database if it is missing, empties the tables and drops the queue, so
every run starts clean. Nothing consumes the tasks: the figure is what the request (and, for the
outbox, the relay in the same process) costs. Also serves the ``bench`` plugin's routes.

Run: ``uvicorn --app-dir benchmarks/baselines --factory tasks_app:create``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from fastplug_app import BenchPlugin
from sqlalchemy import String
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from fastplug.config.settings import Settings
from fastplug.core.app import build_app
from fastplug.core.asgi import freeze
from fastplug.core.bootstrap import load
from fastplug.core.markers import hookimpl
from fastplug.core.services import service
from fastplug.core.specs import PluginInfo
from fastplug.plugins.db.api import Base, DbSession

TASK = "bench.confirm"
BODY = b'{"queued":true}'
Tasks = service("tasks", object)
Celery = service("tasks.celery", object)


class BenchOrder(Base):
    __tablename__ = "bench_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str] = mapped_column(String(50))


def _queued() -> Response:
    return Response(BODY, media_type="application/json")


async def _order(session: Any) -> int:
    order = BenchOrder(item="widget")
    session.add(order)
    await session.flush()
    return order.id


router = APIRouter(prefix="/bench/task")


@router.get("/none")
async def none(session: DbSession) -> Response:
    await _order(session)
    return _queued()


@router.get("/outbox")
async def outbox(session: DbSession, tasks: Tasks) -> Response:
    await tasks.enqueue(session, TASK, await _order(session))  # type: ignore[attr-defined]
    return _queued()


@router.get("/delay")
async def delay(session: DbSession, tasks: Tasks) -> Response:
    await tasks.delay(TASK, await _order(session))  # type: ignore[attr-defined]
    return _queued()


@router.get("/blocking")
async def blocking(session: DbSession, celery: Celery) -> Response:
    celery.tasks[TASK].delay(await _order(session))  # type: ignore[attr-defined]
    return _queued()


class BenchTasksPlugin:
    """The task routes, the no-op task and the orders table."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="benchtasks", requires=("db", "tasks"))

    @hookimpl
    def register_tasks(self, celery_app: Any) -> None:
        celery_app.task(name=TASK, ignore_result=True)(_confirm)

    @hookimpl
    def register_routers(self) -> Sequence[APIRouter]:
        return [router]

    @hookimpl
    def lifespan(self, services: Any) -> Any:
        @asynccontextmanager
        async def run() -> AsyncIterator[None]:
            async with services["db.engine"].begin() as conn:
                await conn.run_sync(BenchOrder.__table__.create, checkfirst=True)
            yield None

        return run()


def _confirm(order_id: int) -> int:
    return order_id


def _clean(settings: Settings) -> None:
    """Create the database if missing, empty the tables, drop the queue (and what it held)."""
    import asyncpg
    from kombu import Connection

    url = make_url(settings.section("db").url)  # type: ignore[attr-defined]
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)

    async def prepare() -> None:
        connection = await asyncpg.connect(admin)
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database):
                await connection.execute(f'CREATE DATABASE "{url.database}"')
        finally:
            await connection.close()
        connection = await asyncpg.connect(dsn)
        try:
            for table in ("bench_orders", "tasks_outbox"):
                if await connection.fetchval("SELECT to_regclass($1)", table):
                    await connection.execute(f"TRUNCATE {table}")
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as pool:  # uvicorn calls the factory on its running loop
        pool.submit(asyncio.run, prepare()).result()
    tasks = settings.section("tasks")
    with Connection(tasks.broker_url, connect_timeout=5) as conn:  # type: ignore[attr-defined]
        conn.default_channel.queue_delete(tasks.task_default_queue)  # type: ignore[attr-defined]


def create() -> FastAPI:
    """The app as ``core.asgi.create_app_from_env`` builds it, with the bench plugins."""
    settings, plugins = load(extra_plugins={"bench": BenchPlugin(), "benchtasks": BenchTasksPlugin()})
    _clean(settings)
    return freeze(build_app(settings, plugins))
