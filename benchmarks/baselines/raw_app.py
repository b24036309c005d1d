"""A raw ASGI app, no framework: the floor for ``GET /bench/list20k``.

``json.dumps`` of the page's dicts per request (the standard library's C encoder, no
validation, no routing), ``GET /health/live`` for the harness's readiness probe.

Run: ``uvicorn --app-dir benchmarks/baselines raw_app:app``.
"""

from __future__ import annotations

import json
from typing import Any

from domain import LIST_PATH, page_dict

LIVE = b'{"status":"ok"}'
DATA = page_dict()
NOT_FOUND = b'{"detail":"Not Found"}'


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/bench/list20k``: ``json.dumps`` per request; ``/health/live``; 404 otherwise."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == LIST_PATH:
        status, body = 200, json.dumps(DATA, separators=(",", ":")).encode()
    elif path == "/health/live":
        status, body = 200, LIVE
    else:
        status, body = 404, NOT_FOUND
    await send({"type": "http.response.start", "status": status, "headers": _headers(body)})
    await send({"type": "http.response.body", "body": body})
