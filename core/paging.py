"""Keyset pagination by id: opaque cursors carrying the last id of a page.

A cursor is the URL-safe base64 (unpadded) of the last id as 4 big-endian bytes: always six
characters of ``[A-Za-z0-9_-]``, so the OpenAPI pattern describes exactly what is accepted.
Ids are 32-bit ``INTEGER`` keys (``1..INT32_MAX``)::

    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None
    after = decode_cursor(cursor)  # 0: the first page
    rows = ...  # up to limit + 1 rows with id > after, by id
    return page.response(page_of(rows, limit), from_attributes=True)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError

INT32_MAX = 2**31 - 1
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{6}$"

T = TypeVar("T")


def encode_cursor(last_id: int) -> str:
    """The cursor of the page that follows ``last_id``."""
    return base64.urlsafe_b64encode(last_id.to_bytes(4, "big")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The last id ``cursor`` carries (0 for the first page); a malformed cursor is a 422."""
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "==")
    except (binascii.Error, ValueError):
        raw = b""
    if len(cursor) != 6 or len(raw) != 4:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "cursor"), "msg": "Invalid cursor", "input": cursor}]
        )
    return int.from_bytes(raw, "big")


def page_of(rows: Sequence[T], limit: int, key: Any = lambda row: row.id) -> dict[str, Any]:
    """``{"items", "next_cursor"}`` from up to ``limit + 1`` rows (the extra one says that
    another page exists)."""
    if len(rows) <= limit:
        return {"items": rows, "next_cursor": None}
    items = rows[:limit]
    return {"items": items, "next_cursor": encode_cursor(key(items[-1]))}
