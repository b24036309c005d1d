"""The recipe baseline: FastAPI hand-rolled the way the popular article does it.

See ``/work/shared/RECIPE.md``. Written with current library names (``lifespan``,
not ``on_event``) but otherwise as the article shows it, mistakes included:

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

Run: ``uvicorn --app-dir benchmarks/baselines recipe_app:app``.
"""

import functools
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis
from bench_data import CACHED_PATH, ITEM, pg_dsn
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import Response
from payload import BODY, PATH
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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


resources: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The article's engine (pool_size=20, max_overflow=30, pool_pre_ping) and Redis client."""
    if pg_dsn():
        url = pg_dsn().replace("postgresql://", "postgresql+asyncpg://", 1)
        engine = create_async_engine(url, pool_size=20, max_overflow=30, pool_pre_ping=True)
        resources["sessionmaker"] = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    resources["redis"] = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    yield
    await resources.pop("redis").aclose()
    if "sessionmaker" in resources:
        await resources.pop("sessionmaker").kw["bind"].dispose()


async def get_db() -> AsyncIterator[AsyncSession]:
    """The article's session-per-request dependency."""
    async with resources["sessionmaker"]() as session:
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


app = create_app()
