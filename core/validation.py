"""422 answers that are always valid JSON and never echo more than a short excerpt.

FastAPI's own handler returns each error's whole ``input``: a 20 MB body comes back as a
20 MB 422, and an input JSON cannot encode (``NaN``, ``Infinity``, ``1e400``, a lone
surrogate) makes the handler itself fail, a 500 whose traceback logs the whole input. Here
every error keeps its ``type``, ``loc`` and ``msg``; a scalar ``input`` is kept as a short,
JSON-safe excerpt, and a container input (an object or array) is left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request

EXCERPT = 64
"""Characters of a string kept (in an input, a location, a context value)."""
MESSAGE = 300
"""Characters of an error message kept."""
MAX_ERRORS = 20
"""Errors listed (a body with thousands of bad fields gets the first ones)."""


def excerpt(value: str, limit: int = EXCERPT) -> str:
    """At most ``limit`` characters of ``value``, lone surrogates replaced: always encodable."""
    cut = value[:limit] + ("..." if len(value) > limit else "")
    return cut.encode("utf-8", "replace").decode("utf-8")


def safe_scalar(value: Any) -> Any:
    """A JSON-safe, short stand-in for an input value; ``...`` for what is left out."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf'
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else "(a very large integer)"
    if isinstance(value, str):
        return excerpt(value)
    if isinstance(value, bytes):
        return excerpt(value.decode("utf-8", "replace"))
    return ...


def safe_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """The errors as short, JSON-safe dicts (see the module docstring)."""
    out: list[dict[str, Any]] = []
    for error in list(errors)[:MAX_ERRORS]:
        item: dict[str, Any] = {
            "type": excerpt(str(error.get("type", "value_error"))),
            "loc": [part if isinstance(part, int) else excerpt(str(part)) for part in error.get("loc", ())],
            "msg": excerpt(str(error.get("msg", "")), MESSAGE),
        }
        if "input" in error:
            value = safe_scalar(error["input"])
            if value is not ...:
                item["input"] = value
        ctx = error.get("ctx")
        if isinstance(ctx, dict):
            safe = {excerpt(str(k)): safe_scalar(v) for k, v in ctx.items()}
            item["ctx"] = {k: (excerpt(str(ctx[k])) if v is ... else v) for k, v in safe.items()}
        out.append(item)
    return out


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with :func:`safe_errors` (the request body is never logged or echoed whole)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": safe_errors(exc.errors())}, status_code=422)
