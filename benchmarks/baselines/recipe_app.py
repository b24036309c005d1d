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

Self-contained on purpose. The database pool, Redis cache and Celery parts of the
article go into the marked sections (lifespan resources, routes) in later issues.

Run: ``uvicorn --app-dir benchmarks/baselines recipe_app:app``.
"""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import Response
from payload import BODY, PATH
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
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


# --- resources: pools and clients opened once (DB, Redis, HTTP: later issues) --
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the article's pools at startup and close them at shutdown (none yet)."""
    yield


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
