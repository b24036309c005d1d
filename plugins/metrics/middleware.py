"""Pure-ASGI request metrics, and the per-route in-progress gauge.

The middleware times every HTTP request but the scrape path, counts its status (500 when
the app raises) and body sizes, and labels them with the route template Starlette put in
``scope["route"]`` while routing. Requests in progress are counted by a thin wrapper
around each route's app (:class:`InProgress`), the only place where the route is known
before the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastplug.core import Answer
from fastplug.plugins.metrics.instruments import METHODS, OTHER_METHOD, Instruments

Header = tuple[bytes, bytes]


def timing_headers(server_timing: bool, process_time: bool) -> Callable[[float], list[Header]] | None:
    """A function of the elapsed seconds giving the timing headers to add, or None."""
    if server_timing and process_time:
        return lambda s: [(b"server-timing", b"app;dur=%.3f" % (s * 1000)), (b"x-process-time", b"%.6f" % s)]
    if server_timing:
        return lambda s: [(b"server-timing", b"app;dur=%.3f" % (s * 1000))]
    if process_time:
        return lambda s: [(b"x-process-time", b"%.6f" % s)]
    return None


class MetricsMiddleware:
    """Observe ``http_requests_total``, ``http_request_duration_seconds`` and the request
    and response size summaries for every HTTP request except ``exclude_path`` (None: every one)."""

    def __init__(
        self,
        app: ASGIApp,
        instruments: Instruments,
        exclude_path: str | None = "/metrics",
        timing_header: bool = False,
        process_time_header: bool = False,
    ) -> None:
        self.app = app
        self.instruments = instruments
        self.exclude_path = exclude_path
        self.headers = timing_headers(timing_header, process_time_header)
        self._inner_now: Callable[[Scope], Answer | None] | None = getattr(app, "answer_now", None)

    def answer_now(self, scope: Scope) -> Answer | None:
        """The inner edge middleware's immediate answer (a cache hit), timed and recorded as
        :meth:`__call__` records it (see :class:`fastplug.core.MiddlewareSpec`)."""
        inner = self._inner_now
        if inner is None or scope["type"] != "http" or scope["path"] == self.exclude_path:
            return None
        began = perf_counter()
        answer = inner(scope)
        if answer is None:
            return None
        status, headers, body = answer
        if self.headers is not None:
            headers = [*headers, *self.headers(perf_counter() - began)]
        hooks = self.instruments.request_hooks
        ends = [end for begin in hooks if (end := begin()) is not None] if hooks else None
        self.instruments.record(scope, scope.get("root_path", ""), status, len(body), perf_counter() - began, ends)
        return status, headers, body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == self.exclude_path:
            await self.app(scope, receive, send)
            return
        began = perf_counter()
        sent = [500, 0]  # status, body bytes
        headers = self.headers

        def send_observed(message: Message) -> Awaitable[None]:
            # a plain function returning send's awaitable: no coroutine frame per message
            kind = message["type"]
            if kind == "http.response.body":
                sent[1] += len(message.get("body", b""))
            elif kind == "http.response.start":
                sent[0] = message["status"]
                if headers is not None:
                    extra = headers(perf_counter() - began)
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            return send(message)

        hooks = self.instruments.request_hooks
        ends = [end for begin in hooks if (end := begin()) is not None] if hooks else None
        root_path = scope.get("root_path", "")
        try:
            await self.app(scope, receive, send_observed)
        except Exception:
            sent[0] = 500
            raise
        finally:
            self.instruments.record(scope, root_path, sent[0], sent[1], perf_counter() - began, ends)


class InProgress:
    """Wraps one route's ASGI app: ``http_requests_in_progress{method, route}`` while it runs."""

    __slots__ = ("app", "children", "instruments", "route")

    def __init__(self, app: ASGIApp, instruments: Instruments, route: str) -> None:
        self.app = app
        self.instruments = instruments
        self.route = route
        self.children: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        child = self.children.get(scope["method"])
        if child is None:
            child = self._child(scope["method"])
        child.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            child.dec()

    def _child(self, method: str) -> Any:
        label = method if method in METHODS else OTHER_METHOD
        child = self.children[method] = self.instruments.level_for(label, self.route)
        if len(self.children) > len(METHODS) + 8:  # odd methods share one child; keep the memo small
            self.children = {m: c for m, c in self.children.items() if m in METHODS}
        return child
