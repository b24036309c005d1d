"""A plugin for the profiling tests: routes that block the event loop in each usual way, one
that awaits as long, a fast one, and a slow one that runs SQL."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from sqlalchemy import text

from fastplug.core import MiddlewareSpec, PluginInfo, hookimpl
from fastplug.plugins.db.api import DbSession

router = APIRouter()
BLOCK = 0.3  # seconds each blocking route holds the loop


@router.get("/block/sleep")
async def block_sleep() -> dict[str, str]:
    time.sleep(BLOCK)  # noqa: ASYNC251  line: SLEEP
    return {"ok": "slept"}


def _spin(deadline: float) -> int:
    n = 0
    while time.perf_counter() < deadline:  # line: SPIN
        n += 1
    return n


@router.get("/block/cpu")
async def block_cpu() -> dict[str, int]:
    return {"spun": _spin(time.perf_counter() + BLOCK)}  # line: CPU


@router.get("/block/sync-db")
async def block_sync_db() -> dict[str, int]:
    with sqlite3.connect(":memory:") as conn:  # a sync driver called from async code
        deadline = time.perf_counter() + BLOCK
        conn.create_function("running", 0, lambda: time.perf_counter() < deadline)
        query = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE running()) SELECT count(*) FROM n"
        (count,) = conn.execute(query).fetchone()  # line: SYNCDB
    return {"rows": count}


@router.get("/calls-sleep")
async def calls_sleep() -> dict[str, str]:
    return await block_sleep()  # another route's function: this route is still the one blamed


@router.get("/mw-block/{n}")
async def mw_block(n: int) -> dict[str, int]:
    return {"n": n}


class BlockingMiddleware:
    """Blocks the loop before routing, for ``/mw-block/...`` requests."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mw-block/"):
            time.sleep(BLOCK)  # noqa: ASYNC251  line: MIDDLEWARE
        await self.app(scope, receive, send)


sub = FastAPI()


@sub.get("/block")
async def sub_block() -> dict[str, str]:
    time.sleep(BLOCK)  # noqa: ASYNC251  line: SUB
    return {"ok": "sub"}


@router.get("/await")
async def awaits() -> dict[str, str]:
    await asyncio.sleep(BLOCK)
    return {"ok": "awaited"}


@router.websocket("/ws")  # a router with a websocket is kept whole by FastAPI: routes found through it
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


@router.get("/fast")
async def fast() -> dict[str, str]:
    return {"ok": "fast"}


@router.get("/slow-db")
async def slow_db(session: DbSession) -> dict[str, int]:
    value = (await session.execute(text("SELECT 1"))).scalar_one()
    await asyncio.sleep(0.25)
    return {"value": value}


def handler_of_profile() -> int:
    return sum(i * i for i in range(200_000))


@router.get("/work")
async def work() -> dict[str, int]:
    return {"total": handler_of_profile()}


def line_of(marker: str) -> int:
    """The line number of ``# line: MARKER`` in this file."""
    with open(__file__, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.rstrip().endswith(f"line: {marker}"):
                return number
    raise LookupError(marker)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="watched", requires=("db",))


@hookimpl
def register_routers(settings: Any) -> Sequence[APIRouter]:
    return [router]


@hookimpl
def register_middleware(settings: Any) -> Sequence[MiddlewareSpec]:
    return [MiddlewareSpec("watched.blocking", BlockingMiddleware)]


@hookimpl
def app_created(app: FastAPI, settings: Any) -> None:
    app.mount("/sub", sub)
