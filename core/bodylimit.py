"""``[server] max_body_size`` at no cost to requests that carry no body.

FastAPI's ``max_body_size`` wraps the app, the router and every route in Starlette's body
limiter, and each layer wraps ``receive`` and ``send`` of every request, a ``GET`` without a
body included. Core gives FastAPI no app-wide limit and installs :class:`BodyLimit` as the
outermost user middleware instead, where FastAPI would put its own limiter. An HTTP/1.x request
without ``Content-Length`` (or with ``Content-Length: 0``) and without ``Transfer-Encoding``
has no body by the protocol's framing, so it goes straight through. Every other request goes
through FastAPI's app limiter, exactly as before: 413 before the body is read when
Content-Length says too much, 413 as soon as a chunked body passes the limit, and a route's
own ``max_body_size=`` still replaces the app's limit for that route.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

try:  # FastAPI's app-level limiter: 413 through FastAPI's handler, ExceptionGroups unwrapped
    from fastapi._body_limit import AppBodyLimitMiddleware as _Limiter
except ImportError:  # pragma: no cover - another FastAPI: Starlette's public limiter
    from starlette.middleware.body_limit import RequestBodyLimitMiddleware as _Limiter

_FRAMED_1X = frozenset({"1.0", "1.1"})


def has_body(scope: Scope) -> bool:
    """False only when the request's HTTP/1.x framing says it carries no body."""
    if scope.get("http_version") not in _FRAMED_1X:
        return True  # HTTP/2 and later frame bodies without either header
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.strip() != b"0":
                return True
        elif name == b"transfer-encoding":
            return True
    return False


class BodyLimit:
    """Pure ASGI: requests with a body go through FastAPI's limiter, the rest straight on."""

    __slots__ = ("app", "limited")

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.limited: ASGIApp = _Limiter(app, max_body_size=max_body_size)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # a plain function returning the next awaitable: no coroutine frame of its own
        if scope["type"] == "http" and has_body(scope):
            return self.limited(scope, receive, send)
        return self.app(scope, receive, send)
