"""Redis errors as answers: a Redis the app cannot use now is 503 + Retry-After, JSON.

Unreachable, timing out, refusing our credentials (a wrong password, an ACL), loading its
data set, read-only (a replica after a failover), out of memory, a cluster down: each is
classified by its exception class and answered with a short reason that names no host,
port, user or password (the log has the cause).
"""

from __future__ import annotations

import logging
from typing import Any

from redis import exceptions as rx
from starlette.requests import Request
from starlette.responses import JSONResponse

from fastplug.core import one_line

log = logging.getLogger("fastplug.redis")
DOWN = "redis unavailable"
RETRY_AFTER = {"Retry-After": "1"}

# most specific first: the first class the error is an instance of gives the reason
REASONS: tuple[tuple[type[Exception], str], ...] = (
    (rx.AuthenticationError, "authentication failed"),
    (rx.AuthenticationWrongNumberOfArgsError, "authentication failed"),
    (rx.AuthorizationError, "authentication failed"),
    (rx.NoPermissionError, "permission denied"),
    (rx.BusyLoadingError, "loading its data set"),
    (rx.MaxConnectionsError, "no connection available"),
    (rx.TimeoutError, "timed out"),
    (rx.ReadOnlyError, "read-only replica"),
    (rx.OutOfMemoryError, "out of memory"),
    (rx.ClusterDownError, "cluster down"),
    (rx.TryAgainError, "cluster busy"),
    (rx.ConnectionError, "connection failed"),
)


def _reason(exc: BaseException) -> str:
    for kind, reason in REASONS:
        if isinstance(exc, kind):
            return f"{DOWN}: {reason}"
    return DOWN


async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 + ``Retry-After: 1``, ``{"detail": "redis unavailable: <reason>"}``."""
    log.warning("503 on %s %s: %s", request.method, request.url.path, one_line(exc))
    return JSONResponse({"detail": _reason(exc)}, status_code=503, headers=RETRY_AFTER)


def exception_handlers() -> dict[type[BaseException], Any]:
    """Every Redis error that means "not now" (the others are bugs: a JSON 500 from core)."""
    return {kind: redis_unavailable for kind, _ in REASONS}
