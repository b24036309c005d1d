"""Response bodies every plugin shares (one OpenAPI component each, not one per plugin)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """An error answer (FastAPI's ``{"detail": "..."}``, as ``HTTPException`` renders it)."""

    detail: str


UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorOut,
        "description": "A service the route needs is unavailable or busy (database, cache, broker); "
        "retry after `Retry-After` seconds",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    }
}
"""``responses=UNAVAILABLE`` (on a router or a route): documents the 503 core answers when a
service is down or its pool is exhausted."""
