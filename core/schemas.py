"""Response bodies every plugin shares (one OpenAPI component each, not one per plugin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel


def _as_utc(value: datetime) -> datetime:
    # SQLite gives back naive UTC timestamps (CURRENT_TIMESTAMP), PostgreSQL aware ones
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp always answered with its UTC offset, whatever the database gave back."""


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
