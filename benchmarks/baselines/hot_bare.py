"""Issue 12's bare FastAPI: the routes of ``hot.py`` declared with ``@app.get``, a raw asyncpg
pool opened in the lifespan, no middleware: what a hand-written FastAPI app does.

Run: ``uvicorn --app-dir benchmarks/baselines hot_bare:app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import hot
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

LIVE = b'{"status":"ok"}'
_pool: dict[str, asyncpg.Pool] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The raw pool, when the run seeded a database."""
    dsn = hot.pg_dsn()
    if dsn:
        _pool["pool"] = await asyncpg.create_pool(dsn, min_size=hot.POOL_SIZE, max_size=hot.POOL_SIZE)
    yield
    if "pool" in _pool:
        await _pool.pop("pool").close()


app = FastAPI(title="bare", lifespan=lifespan)


@app.get("/health/live")
async def live() -> Response:
    return Response(LIVE, media_type="application/json")


@app.get("/hello", response_model=hot.Hello)
async def hello() -> dict[str, Any]:
    return hot.HELLO


@app.get("/users/{user_id}", response_model=hot.User)
async def get_user(user_id: int) -> dict[str, Any]:
    record = await _pool["pool"].fetchrow(hot.USER_SQL, user_id)
    if record is None:
        raise HTTPException(404, "user not found")
    return dict(record)


@app.get("/big", response_model=list[hot.Item])
async def big() -> list[dict[str, Any]]:
    return hot.BIG
