"""The tasks plugin's lifespan (server and worker processes), health check and system check."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from fastplug.config import Settings, mask_url, mask_url_password
from fastplug.core import CheckError, CheckMessage, CheckWarning, Runtime, Services, one_line
from fastplug.plugins.db.api import ENGINE, describe_error
from fastplug.plugins.tasks.api import CELERY, METRICS, SERVICE
from fastplug.plugins.tasks.settings import TasksSettings, outbox_enabled

log = logging.getLogger("fastplug.tasks")
WORKER_CONTEXT = "fastplug_tasks_worker"  # app.state attribute in worker processes


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """Set on the app a worker process starts for its services: use this Celery app, run no
    embedded worker, relay only in the main process."""

    celery: Any
    relay: bool


@asynccontextmanager
async def run(app: FastAPI, settings: Settings, services: Services) -> AsyncIterator[dict[str, Any]]:
    """Build the Celery app (or take the worker's), start the embedded worker and the relay."""
    from fastplug.plugins.tasks.celery_app import build_celery, task_ending
    from fastplug.plugins.tasks.embedded import EmbeddedWorker
    from fastplug.plugins.tasks.outbox import Relay
    from fastplug.plugins.tasks.publisher import Publisher
    from fastplug.plugins.tasks.queue import TaskQueue
    from fastplug.plugins.tasks.runtime import OutboxGuard, TaskRuntime

    conf = settings.section("tasks", TasksSettings)
    ctx: WorkerContext | None = getattr(app.state, WORKER_CONTEXT, None)
    celery = ctx.celery if ctx is not None else build_celery(settings, Runtime.of(app).plugins)
    state = celery.fastplug
    engine = services.get(ENGINE) if state.outbox else None
    if state.outbox and engine is None:
        raise RuntimeError("[tasks] outbox needs the db plugin (enabled, with tasks starting after it)")
    loop = asyncio.get_running_loop()
    guard = None
    if engine is not None:
        redelivery = conf.outbox_redelivery_timeout
        guard = OutboxGuard(engine, loop, conf.visibility_timeout, redelivery, classify=task_ending)
    state.runtimes[os.getpid()] = TaskRuntime(loop, services, guard)
    publisher = Publisher(celery, conf.publish_timeout)
    relay = Relay(engine, publisher, conf) if engine is not None else None
    embedded = EmbeddedWorker(celery, conf.embedded_concurrency) if ctx is None and conf.runs_embedded else None
    queue = TaskQueue(celery, publisher, relay, embedded)
    relaying: asyncio.Task[None] | None = None
    try:
        if embedded is not None:
            await embedded.start()
        if relay is not None and (ctx is None or ctx.relay):
            relaying = asyncio.create_task(relay.run(), name="fastplug-tasks-relay")
        yield {SERVICE: queue, CELERY: celery, METRICS: state.metrics}
    finally:
        if relaying is not None:
            relaying.cancel()
            try:
                await relaying
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # it had stopped (the database unavailable, say): expected, not a crash
                log.warning("plugin 'tasks' could not relay the outbox: %s", _describe(exc))
            if relay is not None and not conf.is_memory:  # publish what the last requests committed
                try:
                    await asyncio.wait_for(relay.relay_once(poll=False), conf.publish_timeout)
                except Exception as exc:  # the rows stay pending: the next relay publishes them
                    log.warning("plugin 'tasks' could not publish the outbox at shutdown: %s", _describe(exc))
        try:
            if embedded is not None:
                await embedded.stop()
        finally:
            publisher.close()
            state.runtimes.pop(os.getpid(), None)
            if ctx is None:
                await asyncio.to_thread(celery.close)


def _describe(exc: BaseException) -> str:
    """The broker's failure as it is, the database's as the db plugin names it."""
    from fastplug.plugins.tasks.errors import BrokerUnavailable

    return one_line(exc) if isinstance(exc, BrokerUnavailable) else describe_error(exc)


async def health(services: Services) -> dict[str, Any]:
    """The broker answers (memory://: nothing to reach), the embedded worker runs; the
    outbox backlog as detail."""
    queue = services.require(SERVICE)
    conf = queue.celery.fastplug.conf
    detail: dict[str, Any] = {"broker": await queue.publisher.ping() if not conf.is_memory else "memory://"}
    if queue.embedded is not None:
        if not queue.embedded.alive:
            raise RuntimeError("the embedded worker stopped")
        detail["embedded_worker"] = "running"
    if queue.relay is not None:
        detail["outbox_backlog"] = queue.metrics.outbox_backlog
    return detail


async def broker_problem(conf: TasksSettings) -> str | None:
    """Why the broker cannot be reached, or ``None`` (``manage.py check``)."""
    from kombu import Connection

    from fastplug.plugins.tasks.celery_app import celery_config

    options = celery_config(conf)

    def connect() -> None:
        with Connection(
            conf.broker_url, connect_timeout=conf.publish_timeout, transport_options=options["broker_transport_options"]
        ) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=conf.publish_timeout)

    try:
        await asyncio.wait_for(asyncio.to_thread(connect), conf.publish_timeout * 2)
    except TimeoutError:
        return f"no answer within {conf.publish_timeout * 2:g}s"
    except Exception as exc:
        return mask_url_password(one_line(exc))
    return None


async def checks(settings: Settings) -> Sequence[CheckMessage]:
    """Settings that cannot work together, and the broker's connectivity."""
    conf = settings.section("tasks", TasksSettings)
    messages: list[CheckMessage] = []
    if conf.outbox and "db" not in settings.plugins:
        messages.append(
            CheckError("[tasks] outbox = true needs the db plugin", "tasks.E002", "enable db, or set outbox = false")
        )
    if conf.is_memory and not conf.runs_embedded:
        messages.append(
            CheckWarning(
                "the memory:// broker is seen by this process only, and the embedded worker is off: no task will run",
                "tasks.W001",
                "set [tasks] embedded_worker = true, or a broker_url such as amqp:// or redis://",
            )
        )
    if (conf.result_backend or "").startswith("rpc://"):
        messages.append(
            CheckWarning(
                "rpc:// results can be read only by the thread that sent the task, and tasks are "
                "published from a thread pool: TaskQueue.result() will not see them",
                "tasks.W002",
                "use a redis:// or db+postgresql:// result_backend",
            )
        )
    if outbox_enabled(conf, settings.plugins) and conf.outbox_redelivery_timeout <= conf.redelivery_bound:
        messages.append(
            CheckWarning(
                f"[tasks] outbox_redelivery_timeout ({conf.outbox_redelivery_timeout:g}s) is not above the "
                f"broker's own redelivery (visibility_timeout + redis_restore_interval = {conf.redelivery_bound:g}s): "
                "outbox tasks a dead worker took are published twice (the copy is skipped)",
                "tasks.W003",
                "raise outbox_redelivery_timeout, or lower visibility_timeout",
            )
        )
    if not outbox_enabled(conf, settings.plugins):
        messages.append(
            CheckMessage(
                "info",
                "no task outbox: delay()/apply_async() are best-effort (lost if the broker is down)",
                "tasks.I001",
            )
        )
    if not conf.is_memory:
        problem = await broker_problem(conf)
        if problem is not None:
            messages.append(
                CheckError(
                    f"cannot connect to the broker {mask_url(conf.broker_url)}: {problem}",
                    "tasks.E001",
                    "is [tasks] broker_url right and the broker running?",
                )
            )
    return messages
