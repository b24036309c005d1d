"""The recipe baseline: FastAPI hand-rolled the way the popular article does it.

Written with current library names (``lifespan``, not ``on_event``) but otherwise as the article
shows it, mistakes included:

* ``GZipMiddleware(minimum_size=1000)``;
* a ``BaseHTTPMiddleware`` ``ProfilingMiddleware`` that observes a latency
  ``Histogram`` and counts requests in a ``Counter``, both labelled with the raw
  ``request.url.path``, and sets ``X-Process-Time``;
* ``GET /health/live`` doing the same work as fastplug's health plugin,
  ``GET /bench/json20k`` (the ~20 KB JSON body of ``payload.py``), and
  ``GET /metrics`` for Prometheus.

Self-contained on purpose. Its database part (SQLAlchemy session per request, ``GET
/bench/row/{id}``) and Redis cache decorator (``GET /bench/cached``) are the article's;
the Celery part comes with the tasks benchmarks.

Issue 7: ``GET /users/{id}`` (``db.get``) and ``GET /users/{id}/orders`` as the article
writes it, ``select(User).options(selectinload(User.orders).selectinload(Order.items))``,
plus ``.selectinload(OrderItem.product)``: without it the response's products would be
lazy loads, which raise ``MissingGreenlet`` under ``AsyncSession`` instead of running. The
user's orders come newest first, all of them (no page), as the plugins' ``OrderPage``.
A second engine (the article's pool options) on the seeded domain database.

Run: ``uvicorn --app-dir benchmarks/baselines recipe_app:app``.
"""

import functools
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as redis
from bench_data import CACHED_PATH, ITEM, pg_dsn
from domain import OrderPage, UserOut, async_url, domain_dsn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import Response
from payload import BODY, PATH
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict
from querycount import maybe_counted
from sqlalchemy import ForeignKey, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload
from starlette.middleware.base import BaseHTTPMiddleware

LIVE = b'{"status":"ok"}'

# --- monitoring: module-level metrics, as in the article ---------------------
REQUEST_LATENCY = Histogram("http_request_latency_seconds", "Request latency", ["method", "endpoint"])
REQUEST_COUNT = Counter("http_requests_total", "Total requests", ["method", "endpoint", "status"])


class ProfilingMiddleware(BaseHTTPMiddleware):
    """Times every request, records it under the raw path, sets ``X-Process-Time``."""

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - start
        REQUEST_LATENCY.labels(method=request.method, endpoint=request.url.path).observe(elapsed)
        REQUEST_COUNT.labels(method=request.method, endpoint=request.url.path, status=response.status_code).inc()
        response.headers["X-Process-Time"] = str(elapsed)
        return response


# --- resources: the article's pools, opened once ---------------------------------
class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    price: Mapped[float]
    in_stock: Mapped[bool]


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="ignore")
    id: int
    name: str
    price: float
    in_stock: bool


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]
    name: Mapped[str]
    created_at: Mapped[datetime]
    orders: Mapped[list["Order"]] = relationship(back_populates="user", order_by="Order.id.desc()")


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str]
    name: Mapped[str]
    description: Mapped[str]
    category: Mapped[str]
    price: Mapped[Decimal]
    stock: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str]
    total: Mapped[Decimal]
    created_at: Mapped[datetime]
    user: Mapped[User] = relationship(back_populates="orders")
    items: Mapped[list["OrderItem"]] = relationship(back_populates="order", order_by="OrderItem.id")


class OrderItem(Base):
    __tablename__ = "order_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]
    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()


resources: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The article's engine (pool_size=20, max_overflow=30, pool_pre_ping) and Redis client."""
    if pg_dsn():
        url = pg_dsn().replace("postgresql://", "postgresql+asyncpg://", 1)
        engine = create_async_engine(url, pool_size=20, max_overflow=30, pool_pre_ping=True)
        resources["sessionmaker"] = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    if domain_dsn():
        engine = create_async_engine(async_url(domain_dsn()), pool_size=20, max_overflow=30, pool_pre_ping=True)
        resources["domain"] = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    resources["redis"] = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    yield
    await resources.pop("redis").aclose()
    for name in ("sessionmaker", "domain"):
        if name in resources:
            await resources.pop(name).kw["bind"].dispose()


async def get_db() -> AsyncIterator[AsyncSession]:
    """The article's session-per-request dependency."""
    async with resources["sessionmaker"]() as session:
        yield session


async def get_domain_db() -> AsyncIterator[AsyncSession]:
    """The same dependency on the domain database (issue 7)."""
    async with resources["domain"]() as session:
        yield session


def cache(ttl: int = 60, key_prefix: str = "cache") -> Callable[..., Any]:
    """The article's Redis decorator, as written (``hash()`` keys, ``if cached:``, json)."""

    def decorator(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = f"{key_prefix}:{func.__name__}:{hash(str(args) + str(kwargs))}"
            cached = await resources["redis"].get(key)
            if cached:
                return json.loads(cached)
            result = await func(*args, **kwargs)
            await resources["redis"].setex(key, ttl, json.dumps(result))
            return result

        return wrapper

    return decorator


# --- routes --------------------------------------------------------------------
def add_routes(app: FastAPI) -> None:
    """The article's endpoints (products, users, orders: later issues)."""

    @app.get("/health/live")
    async def live() -> Response:
        """Liveness: the same bytes and headers as fastplug's ``GET /health/live``."""
        return Response(LIVE, media_type="application/json")

    @app.get(PATH)
    async def json20k() -> Response:
        """The ~20 KB JSON body, pre-encoded (as every target serves it)."""
        return Response(BODY, media_type="application/json")

    @app.get(CACHED_PATH)
    @cache(ttl=600, key_prefix="recipe-bench")
    async def cached_item() -> dict[str, Any]:
        """The article's cached read: a hit is a Redis GET + json.loads, then FastAPI's JSON."""
        return dict(ITEM)

    @app.get("/bench/row/{item_id}", response_model=ItemOut)
    async def row(item_id: int, db: AsyncSession = Depends(get_db)) -> Any:
        """One row by primary key through a session per request, as the article does."""
        return await db.get(Item, item_id)

    @app.get("/users/{user_id}", response_model=UserOut)
    async def get_user(user_id: int, db: AsyncSession = Depends(get_domain_db)) -> Any:
        """One user through a session per request."""
        user = await db.get(User, user_id)
        if user is None:
            raise HTTPException(404, "user not found")
        return user

    @app.get("/users/{user_id}/orders", response_model=OrderPage)
    async def user_orders(user_id: int, db: AsyncSession = Depends(get_domain_db)) -> Any:
        """The article's eager load (plus the products the response needs)."""
        query = select(User).where(User.id == user_id)
        query = query.options(selectinload(User.orders).selectinload(Order.items).selectinload(OrderItem.product))
        user = (await db.execute(query)).scalar_one_or_none()
        if user is None:
            raise HTTPException(404, "user not found")
        return {"items": user.orders, "next_cursor": None}  # all of them: the article does not page

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus exposition of the module-level registry."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app() -> FastAPI:
    """The app as the article assembles it; the last middleware added is outermost."""
    app = FastAPI(title="recipe", lifespan=lifespan)
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.add_middleware(ProfilingMiddleware)
    add_routes(app)
    return app


app = maybe_counted(create_app())
