"""Bare FastAPI: no middleware, the cheapest way to serve each route.

The "what FastAPI alone costs" reference. The handler does exactly what fastplug's
health plugin does per request (``plugins/health/routes.py``): return pre-encoded
bytes in a ``Response`` with ``media_type="application/json"``, so fastplug/bare
measures only what fastplug's core adds around the same handler.

``GET /bench/json20k`` returns the ~20 KB JSON page of ``payload.py`` the same way.

Issue 7: ``GET /users/{id}`` and ``GET /users/{id}/orders`` on the seeded domain database
(``$BENCH_DOMAIN_DSN``) with a raw asyncpg pool and hand-written SQL (a page of orders, then
their items joined with their products: two queries), returned as dicts through FastAPI's
default response-model path (``-> UserOut``, ``-> OrderPage``, the plugins' schemas).

Run: ``uvicorn --app-dir benchmarks/baselines bare_app:app``.
"""

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from bench_data import CACHED_BODY, CACHED_PATH, pg_dsn
from domain import ITEMS_SQL, ORDERS_PAGE, ORDERS_SQL, USER_SQL, OrderPage, UserOut, domain_dsn
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response
from payload import BODY, PATH
from querycount import maybe_counted

LIVE = b'{"status":"ok"}'

_pool: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A raw asyncpg pool when the benchmark seeded a database (``$BENCH_PG_DSN``)."""
    if pg_dsn():
        _pool["pool"] = await asyncpg.create_pool(pg_dsn(), min_size=10, max_size=10)
    if domain_dsn():
        _pool["domain"] = await asyncpg.create_pool(domain_dsn(), min_size=10, max_size=10)
    yield
    for name in ("pool", "domain"):
        if name in _pool:
            await _pool.pop(name).close()


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


# --- issue 7: the domain routes on raw asyncpg --------------------------------------
@app.get("/users/{user_id}")
async def get_user(user_id: int) -> UserOut:
    """One user by primary key: one query."""
    record = await _pool["domain"].fetchrow(USER_SQL, user_id)
    if record is None:
        raise HTTPException(404, "user not found")
    return dict(record)  # type: ignore[return-value]  # FastAPI validates it into UserOut


@app.get("/users/{user_id}/orders")
async def user_orders(
    user_id: int, limit: Annotated[int, Query(ge=1, le=200)] = ORDERS_PAGE, cursor: int | None = None
) -> OrderPage:
    """A page of a user's orders (newest first) with their items and products: two queries
    on one connection (a third, for the 404, only when the page is empty)."""
    sql, args = ORDERS_SQL, [user_id, limit + 1]
    if cursor is not None:
        sql, args = sql.replace("WHERE user_id = $1", "WHERE user_id = $1 AND id < $3"), [*args, cursor]
    async with _pool["domain"].acquire() as connection:
        orders = await connection.fetch(sql, *args)
        if not orders and await connection.fetchval("SELECT 1 FROM users WHERE id = $1", user_id) is None:
            raise HTTPException(404, f"user {user_id} not found")
        orders, more = orders[:limit], len(orders) > limit
        rows = await connection.fetch(ITEMS_SQL, [o["id"] for o in orders]) if orders else []
    out = {o["id"]: {**o, "items": []} for o in orders}
    for row in rows:
        product = {"id": row["p_id"], "sku": row["sku"], "name": row["name"], "price": row["price"]}
        out[row["order_id"]]["items"].append(
            {
                "product_id": row["product_id"],
                "quantity": row["quantity"],
                "unit_price": row["unit_price"],
                "product": product,
            }
        )
    last = orders[-1]["id"].to_bytes(4, "big") if more else None  # the plugins' opaque cursor
    cursor_out = base64.urlsafe_b64encode(last).decode().rstrip("=") if last else None
    page = {"items": list(out.values()), "next_cursor": cursor_out}
    return page  # type: ignore[return-value]  # FastAPI validates it into OrderPage


app = maybe_counted(app)
