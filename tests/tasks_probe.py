"""A plugin contributing tasks, used by the tasks tests (in-process and, through an entry
point, in ``manage.py worker`` subprocesses). Side effects are lines appended to a file
(``<key> <pid>``), so a test sees how often and where each task ran."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import text

from fastplug.config.models import PluginSettings
from fastplug.config.settings import Settings
from fastplug.core import PluginInfo, hookimpl, service
from fastplug.plugins.db.api import DbSession

Tasks = service("tasks", object)  # the tasks plugin's TaskQueue


class ProbeSettings(PluginSettings):
    """``[probe]``: a periodic task for beat, when ``beat_file`` is set."""

    beat_file: str | None = None
    beat_every: float = 0.3


def record_line(path: str, line: str) -> None:
    """Append one line (a single ``write`` on an ``O_APPEND`` file: whole lines, any process)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def lines(path: str | Path) -> list[str]:
    """The lines recorded so far."""
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []


class Job(BaseModel):
    path: str
    key: str


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="probe", settings=ProbeSettings, requires=("tasks",), after=("db",))


@hookimpl
def register_tasks(celery_app: Any, settings: Settings) -> None:
    @celery_app.task(name="probe.add")
    def add(x: int, y: int) -> int:
        return x + y

    @celery_app.task(name="probe.record")
    def record(path: str, key: str) -> str:
        record_line(path, f"{key} {os.getpid()}")
        return key

    @celery_app.task(name="probe.db_record", bind=True)
    async def db_record(self: Any, path: str, key: str) -> list[int]:
        """Async, on the process's own engine: (worker pid, database backend pid or 0)."""
        engine = self.services["db.engine"]
        async with engine.connect() as conn:
            dialect = conn.dialect.name
            backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar() if dialect == "postgresql" else 0
        await asyncio.sleep(0)
        record_line(path, f"{key} {os.getpid()} {backend}")
        return [os.getpid(), int(backend)]

    @celery_app.task(name="probe.slow", bind=True)
    def slow(self: Any, path: str, key: str, seconds: float) -> str:
        """Sleeps ``seconds`` on its first delivery (long enough to be killed); quick after."""
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        record_line(path, f"{'again' if redelivered else 'start'} {key} {os.getpid()}")
        if not redelivered:
            time.sleep(seconds)
        record_line(path, f"done {key} {os.getpid()}")
        return key

    @celery_app.task(name="probe.flaky", bind=True, max_retries=2)
    def flaky(self: Any, path: str, key: str) -> str:
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        record_line(path, f"{key} {os.getpid()}")
        return key

    @celery_app.task(name="probe.fail")
    def fail() -> None:
        raise ValueError("planned failure")

    @celery_app.task(name="probe.gated")
    def gated(path: str, key: str, gate: str, seconds: float = 0.0) -> str:
        """``start`` line, ``seconds`` of work, then waits while the file ``gate`` is missing
        (a test kills the worker then), then the ``done`` line: its side effect. Lines end
        with the pid and the wall clock."""
        record_line(path, f"start {key} {os.getpid()} {time.time():.3f}")
        time.sleep(seconds)
        while not os.path.exists(gate):
            time.sleep(0.02)
        record_line(path, f"done {key} {os.getpid()} {time.time():.3f}")
        return key

    @celery_app.task(name="probe.broken")
    def broken(path: str, key: str) -> None:
        record_line(path, f"{key} {os.getpid()}")
        raise ValueError("planned failure")

    @celery_app.task(name="probe.retry_in", bind=True, max_retries=1)
    def retry_in(self: Any, path: str, key: str, countdown: float) -> str:
        record_line(path, f"{'again' if self.request.retries else 'first'} {key}")
        if self.request.retries == 0:
            raise self.retry(countdown=countdown)
        return key

    conf = settings.section("probe", ProbeSettings)
    if conf.beat_file:
        celery_app.conf.beat_schedule = {
            "probe-tick": {"task": "probe.record", "schedule": conf.beat_every, "args": (conf.beat_file, "tick")}
        }


router = APIRouter(prefix="/probe")


@router.post("/outbox", status_code=201)
async def outbox(job: Job, session: DbSession, tasks: Tasks) -> dict[str, str]:
    task_id = await tasks.enqueue(session, "probe.record", job.path, job.key)  # type: ignore[attr-defined]
    return {"id": task_id}


@router.post("/outbox/then-fail")
async def outbox_then_fail(job: Job, session: DbSession, tasks: Tasks) -> None:
    await tasks.enqueue(session, "probe.record", job.path, job.key)  # type: ignore[attr-defined]
    raise HTTPException(409, "changed my mind")


@router.post("/delay", status_code=201)
async def delay(job: Job, tasks: Tasks) -> dict[str, str]:
    result = await tasks.delay("probe.record", job.path, job.key)  # type: ignore[attr-defined]
    return {"id": result.id}


@router.get("/add")
async def add_now(x: int, y: int, tasks: Tasks) -> int:
    result = await tasks.delay("probe.add", x, y)  # type: ignore[attr-defined]
    return int(await tasks.result(result.id))  # type: ignore[attr-defined]


@hookimpl
def register_routers() -> Sequence[APIRouter]:
    return [router]
