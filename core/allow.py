"""405 answers whose ``Allow`` header lists every method of the path.

FastAPI declares one route per method (``GET /users`` and ``POST /users`` are two routes), and
Starlette answers a method no route takes with the ``Allow`` of the first route whose path
matched: ``DELETE /users`` said ``Allow: GET``, though ``POST`` works too (RFC 9110 15.5.6: the
header lists the methods the resource supports). The table of each path's methods is built once,
when the app is built; a 405 only looks its path up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from fastplug.core.routes import iter_routes

Handler = Callable[[Request, Exception], Awaitable[Response]]


def allow_table(routes: Sequence[BaseRoute]) -> dict[str, str]:
    """``{path template: "GET, POST"}``: the union of the methods of the routes on each path."""
    methods: dict[str, set[str]] = defaultdict(set)
    for row in iter_routes(routes):
        if row.methods:
            methods[row.path].update(row.methods)
    return {path: ", ".join(sorted(names)) for path, names in methods.items()}


def method_not_allowed(table: Mapping[str, str]) -> Handler:
    """The 405 handler: FastAPI's ``{"detail": ...}`` answer, with the path's whole ``Allow``."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        path = getattr(request.scope.get("route"), "path_format", None)
        allow = table.get(path) if isinstance(path, str) else None
        if allow is not None:
            headers["Allow"] = allow
        return JSONResponse({"detail": exc.detail}, status_code=405, headers=headers)

    return handler
