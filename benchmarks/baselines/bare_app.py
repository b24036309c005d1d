"""Bare FastAPI: no middleware, the cheapest way to serve each route.

The "what FastAPI alone costs" reference. The handler does exactly what fastplug's
health plugin does per request (``plugins/health/routes.py``): return pre-encoded
bytes in a ``Response`` with ``media_type="application/json"``, so fastplug/bare
measures only what fastplug's core adds around the same handler.

``GET /bench/json20k`` returns the ~20 KB JSON page of ``payload.py`` the same way.

Run: ``uvicorn --app-dir benchmarks/baselines bare_app:app``.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from bench_data import CACHED_BODY, CACHED_PATH, pg_dsn
from fastapi import FastAPI
from fastapi.responses import Response
from payload import BODY, PATH

LIVE = b'{"status":"ok"}'

_pool: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A raw asyncpg pool when the benchmark seeded a database (``$BENCH_PG_DSN``)."""
    if pg_dsn():
        _pool["pool"] = await asyncpg.create_pool(pg_dsn(), min_size=10, max_size=10)
    yield
    if "pool" in _pool:
        await _pool.pop("pool").close()


app = FastAPI(title="bare", lifespan=lifespan)


@app.get("/health/live")
async def live() -> Response:
    """Liveness: the same bytes and headers as fastplug's ``GET /health/live``."""
    return Response(LIVE, media_type="application/json")


@app.get(PATH)
async def json20k() -> Response:
    """The ~20 KB JSON body, pre-encoded (as every target serves it)."""
    return Response(BODY, media_type="application/json")


# --- the database and cache comparisons (benchmarks/baselines/bench_data.py) ---
@app.get(CACHED_PATH)
async def cheapest() -> Response:
    """Bare FastAPI's cheapest JSON route: pre-encoded bytes (what a cache hit competes with)."""
    return Response(CACHED_BODY, media_type="application/json")


@app.get("/bench/row/{item_id}")
async def row(item_id: int) -> dict[str, Any]:
    """One row by primary key on the raw asyncpg pool."""
    record = await _pool["pool"].fetchrow("SELECT id, name, price, in_stock FROM bench_items WHERE id = $1", item_id)
    return dict(record)
