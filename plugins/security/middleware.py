"""The security middleware (pure ASGI, outermost): allowed hosts, CORS, security headers.

It runs before anything else sees the request: a request for a host this app does not serve
is answered 400 before routing, the cache or metrics (whose route labels it never reaches);
a CORS preflight is answered here; every other response gets the security headers computed at
build time and, for a cross-origin request, its CORS headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastplug.core import Answer
from fastplug.plugins.security.api import HEADERS_MARK
from fastplug.plugins.security.cors import Cors
from fastplug.plugins.security.headers import finished
from fastplug.plugins.security.hosts import AllowedHosts

Header = tuple[bytes, bytes]
BAD_HOST_BODY = b'{"detail":"invalid Host header"}'
RATE_LIMIT_HEADERS = "fastplug.security.rate_limit_headers"
"""Where (in the request's scope) the rate-limit middleware leaves an allowed request's
``RateLimit-*`` headers, for this middleware's one wrapper of ``send`` to add."""


@dataclass(slots=True)
class SecurityStats:
    """Requests the security plugin refused, by reason (read by its metrics collector)."""

    refused: dict[str, int] = field(default_factory=lambda: {"host": 0, "cors": 0, "rate_limit": 0, "unavailable": 0})
    counter: Any = None  # prometheus-client's Counter, once the metrics plugin added it

    def count(self, reason: str) -> None:
        self.refused[reason] += 1
        if self.counter is not None:
            self.counter.labels(reason).inc()


def _json(status: int, body: bytes, extra: tuple[Header, ...] = ()) -> tuple[int, list[Header], bytes]:
    return status, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra], body


class SecurityMiddleware:
    """Allowed hosts, CORS and security headers; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        hosts: AllowedHosts,
        cors: Cors,
        plain: tuple[Header, ...],
        https: tuple[Header, ...],
        exclude_paths: tuple[str, ...] = (),
        stats: SecurityStats | None = None,
        websocket_same_origin: bool = True,
    ) -> None:
        self.app = app
        self.websocket_same_origin = websocket_same_origin
        self.hosts = hosts
        self.cors = cors
        self.plain, self.https = plain, https
        self.names = frozenset(name for name, _ in (*plain, *https))
        self.exclude_paths = exclude_paths
        self.stats = stats or SecurityStats()
        self.vary_origin = cors.enabled and not cors.wildcard
        self._inner_now: Callable[[Scope], Answer | None] | None = getattr(app, "answer_now", None)

    def _extra(self, scope: Scope) -> tuple[Header, ...]:
        if self.exclude_paths and scope["path"].startswith(self.exclude_paths):
            return ()
        return self.https if scope["scheme"] in ("https", "wss") else self.plain

    def _refusal(self, scope: Scope, headers: list[Header]) -> tuple[Answer | None, bytes | None]:
        """The answer for a request refused or answered here (bad host, www redirect, CORS
        preflight) or None, and the request's ``Origin``: one pass over its ``headers``."""
        host = origin = preflight = requested = None
        hosts = 0
        for name, value in headers:
            if name == b"host":
                host = value
                hosts += 1
            elif name == b"origin":
                origin = value
            elif name[:15] == b"access-control-":
                if name == b"access-control-request-method":
                    preflight = value
                elif name == b"access-control-request-headers":
                    requested = value if requested is None else requested + b"," + value
        # RFC 9112: more than one Host is a bad request (which one would the app and a cache use?)
        decision = self.hosts.decide(host) if hosts == 1 else False
        if decision is not True:
            if decision is False:
                self.stats.count("host")
                return _json(400, BAD_HOST_BODY), origin
            # the path as sent (percent-encoded bytes, root_path included): no CR/LF can get in
            path = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
            target = f"{scope['scheme']}://{decision}".encode("latin-1") + path
            if scope.get("query_string"):
                target += b"?" + scope["query_string"]
            return (301, [(b"location", target), (b"content-length", b"0")], b""), origin
        if preflight is not None and origin is not None and scope["method"] == "OPTIONS":
            status, out, body = self.cors.preflight_answer(origin, preflight, requested)
            if status != 200:
                self.stats.count("cors")
            out.append((b"content-length", str(len(body)).encode()))
            return (status, out, body), origin
        return None, origin

    def answer_now(self, scope: Scope) -> Answer | None:
        """What the inner edge middleware answers at once (a cache hit), with this middleware's
        headers; a refused host is answered here. Nothing is changed when it answers None."""
        inner = self._inner_now
        if inner is None or scope["type"] != "http":
            return None
        refused, origin = self._refusal(scope, scope["headers"])
        if refused is not None:
            status, headers, body = refused
            return status, finished(headers, self._extra(scope), self.names), body
        answer = inner(scope)
        if answer is None:
            return None
        status, headers, body = answer
        return status, self._headers(scope, origin, headers), body

    def _headers(self, scope: Scope, origin: bytes | None, response: Any) -> list[Header]:
        """``response``'s headers with the security headers (unless the route opted out), the
        rate-limit headers the limiter left in the scope, and CORS for ``origin``."""
        route = scope.get("route")  # set by routing (or by the cache, for a hit)
        if route is not None and getattr(getattr(route, "endpoint", None), HEADERS_MARK, False):
            extra: tuple[Header, ...] = ()
        else:
            extra = self._extra(scope)
        added = scope.get(RATE_LIMIT_HEADERS) or ()
        if origin is not None and self.cors.enabled:
            cors = self.cors.response_headers(origin)
            if cors:
                added = [*added, *cors]
        return finished(response, extra, self.names, added, self.vary_origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            refused = self._websocket_refusal(scope) if kind == "websocket" else None
            if refused is not None:
                self.stats.count(refused)
                await send({"type": "websocket.close", "code": 1008})  # before accept: uvicorn answers 403
                return
            await self.app(scope, receive, send)
            return
        refused, origin = self._refusal(scope, scope["headers"])
        if refused is not None:
            status, headers, body = refused
            start = {
                "type": "http.response.start",
                "status": status,
                "headers": finished(headers, self._extra(scope), self.names),
            }
            await send(start)
            await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
            return

        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                message = {**message, "headers": self._headers(scope, origin, message.get("headers", ()))}
            return send(message)

        await self.app(scope, receive, send_with_headers)

    def _websocket_refusal(self, scope: Scope) -> str | None:
        """``"host"`` or ``"cors"`` when a WebSocket handshake is refused, else None.

        The host as for HTTP (one ``Host``, an allowed one). A browser always sends ``Origin``
        on a handshake and sends the user's cookies whichever page opened it, so an ``Origin``
        that is neither this host (same scheme family) nor an allowed CORS origin is refused;
        clients that are not browsers send none and are not affected."""
        host = origin = None
        hosts = 0
        for name, value in scope["headers"]:
            if name == b"host":
                host, hosts = value, hosts + 1
            elif name == b"origin":
                origin = value
        if hosts > 1 or self.hosts.decide(host) is not True:
            return "host"
        if origin is None or not self.websocket_same_origin:
            return None
        own = (b"https://" if scope.get("scheme") == "wss" else b"http://") + (host or b"").lower()
        if origin.lower() == own or (self.cors.enabled and self.cors.allows(origin)):
            return None
        return "cors"
