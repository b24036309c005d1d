"""Response bodies every plugin shares (one OpenAPI component each, not one per plugin)."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """An error answer (FastAPI's ``{"detail": "..."}``, as ``HTTPException`` renders it)."""

    detail: str
