"""Bare FastAPI: no middleware, no lifespan, one JSON route.

The "what FastAPI alone costs" reference. The handler does exactly what fastplug's
health plugin does per request (``plugins/health/routes.py``): return pre-encoded
bytes in a ``Response`` with ``media_type="application/json"``, so fastplug/bare
measures only what fastplug's core adds around the same handler.

``GET /bench/json20k`` returns the ~20 KB JSON page of ``payload.py`` the same way.

Run: ``uvicorn --app-dir benchmarks/baselines bare_app:app``.
"""

from fastapi import FastAPI
from fastapi.responses import Response
from payload import BODY, PATH

LIVE = b'{"status":"ok"}'

app = FastAPI(title="bare")


@app.get("/health/live")
async def live() -> Response:
    """Liveness: the same bytes and headers as fastplug's ``GET /health/live``."""
    return Response(LIVE, media_type="application/json")


@app.get(PATH)
async def json20k() -> Response:
    """The ~20 KB JSON body, pre-encoded (as every target serves it)."""
    return Response(BODY, media_type="application/json")
