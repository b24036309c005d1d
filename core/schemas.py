"""Response bodies every plugin shares (one OpenAPI component each, not one per plugin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator


def _as_utc(value: datetime) -> datetime:
    # SQLite gives back naive UTC timestamps (CURRENT_TIMESTAMP), PostgreSQL aware ones
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp always answered with its UTC offset, whatever the database gave back."""


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInteger = BeforeValidator(_whole)
"""An integer as JSON Schema's ``"type": "integer"`` means it: ``3`` and ``3.0`` (JSON has one
number type), never ``3.5`` (nor ``"3"`` or ``true`` in strict models). The last item of the
annotation, after the constraints (which then stay in the schema): ``Annotated[int, Field(ge=1),
JsonInteger]``."""


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

TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {
        "description": "The body is over `[server] max_body_size` (or the route's own limit)",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
"""``responses=TOO_LARGE`` on a route that reads a body: documents the 413 of the app's body limit."""
