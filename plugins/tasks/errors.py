"""The broker's unavailability as an answer: 503 + Retry-After with a JSON body.

Light on purpose (no Celery, no kombu): the exception handler is registered when the app is
built, and Celery is imported only when the plugin starts.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from fastplug.core import one_line

log = logging.getLogger("fastplug.tasks")
BODY = {"detail": "broker unavailable"}
HEADERS = {"Retry-After": "1"}


class BrokerUnavailable(ConnectionError):  # noqa: N818 - reads as the condition it is
    """The broker is unreachable, refused us (a wrong password) or dropped the publish:
    503 + Retry-After (:func:`broker_unavailable`)."""


async def broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 + ``Retry-After: 1``, ``{"detail": "broker unavailable"}``: no broker URL, host or
    credentials in the answer (the log has the cause, its password masked)."""
    log.warning("503 on %s %s: %s", request.method, request.url.path, one_line(exc))
    return JSONResponse(BODY, status_code=503, headers=HEADERS)
