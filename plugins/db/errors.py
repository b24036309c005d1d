"""Database unavailability becomes 503 + Retry-After, never a hang or a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import exc as sa_exc
from starlette.requests import Request
from starlette.responses import JSONResponse

from fastplug.core import one_line

log = logging.getLogger("fastplug.db")

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _unavailable(retry_after: int, detail: str) -> Handler:
    headers = {"Retry-After": str(retry_after)}

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
        log.warning("db unavailable on %s %s: %s", request.method, request.url.path, one_line(cause))
        return JSONResponse({"detail": detail}, status_code=503, headers=headers)

    return handle


def _dbapi_handler(retry_after: int) -> Handler:
    unavailable = _unavailable(retry_after, "database unavailable")

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, sa_exc.DBAPIError)
        if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return await unavailable(request, exc)
        log.error("database error on %s %s: %s", request.method, request.url.path, one_line(exc.orig or exc))
        return JSONResponse({"detail": "database error"}, status_code=500)

    return handle


def exception_handlers(retry_after: int) -> dict[type[BaseException], Any]:
    """Pool timeout and lost/refused connections -> 503; other database errors -> 500.

    (Core already answers a bare ``ConnectionError``/``TimeoutError`` with 503.)
    """
    handlers: dict[type[BaseException], Any] = {
        sa_exc.TimeoutError: _unavailable(retry_after, "database busy: no connection available"),
        sa_exc.DBAPIError: _dbapi_handler(retry_after),
    }
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return handlers
    down = _unavailable(retry_after, "database unavailable")
    handlers[asyncpg.PostgresConnectionError] = down
    handlers[asyncpg.InterfaceError] = down
    return handlers
