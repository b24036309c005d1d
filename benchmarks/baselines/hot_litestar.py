"""Issue 12's Litestar app: the handlers of ``hot.py`` with Litestar's Prometheus middleware
and gzip compression (level 5, ``minimum_size`` 500, as fastplug's defaults), a raw asyncpg
pool opened in the lifespan. Litestar does not validate what a handler returns: its ``/big``
encodes the dicts with msgspec as they are.

Run: ``uvicorn --app-dir benchmarks/baselines hot_litestar:app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import hot
from litestar import Litestar, MediaType, Response, get
from litestar.config.compression import CompressionConfig
from litestar.exceptions import NotFoundException
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

_pool: dict[str, asyncpg.Pool] = {}
LIVE = b'{"status":"ok"}'


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    dsn = hot.pg_dsn()
    if dsn:
        _pool["pool"] = await asyncpg.create_pool(dsn, min_size=hot.POOL_SIZE, max_size=hot.POOL_SIZE)
    yield
    if "pool" in _pool:
        await _pool.pop("pool").close()


@get("/health/live", media_type=MediaType.JSON)
async def live() -> Response[bytes]:
    return Response(LIVE, media_type=MediaType.JSON)


@get("/hello")
async def hello() -> dict[str, Any]:
    return hot.HELLO


@get("/users/{user_id:int}")
async def get_user(user_id: int) -> dict[str, Any]:
    record = await _pool["pool"].fetchrow(hot.USER_SQL, user_id)
    if record is None:
        raise NotFoundException("user not found")
    return dict(record)


@get("/big")
async def big() -> list[dict[str, Any]]:
    return hot.BIG


prometheus = PrometheusConfig(group_path=True)
app = Litestar(
    route_handlers=[live, hello, get_user, big, PrometheusController],
    middleware=[prometheus.middleware],
    compression_config=CompressionConfig(backend="gzip", minimum_size=500, gzip_compress_level=5),
    lifespan=[lifespan],
    openapi_config=None,
)
