"""Slow requests: logged with route, status, duration and SQL statement count, sampled.

With the metrics plugin on, the plugin rides on its per-request hook (``register_metrics``
returns :meth:`SlowRequests.begin`): metrics already times each request and knows its route
and status, so nothing is added to the middleware stack. Without it, :class:`SlowRequestMiddleware`
(pure ASGI) times requests itself.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from time import monotonic, perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("fastplug.profiling")
UNMATCHED = "(unmatched)"


class SlowRequests:
    """Logs requests slower than ``threshold`` seconds: a ``sample_rate`` share of them, and
    at most ``per_second`` lines a second (a slow database makes every request slow)."""

    def __init__(
        self,
        threshold: float,
        sample_rate: float,
        queries: Callable[[], int | None] | None = None,
        per_second: int = 10,
    ) -> None:
        self.threshold = threshold
        self.sample_rate = sample_rate
        self.queries = queries
        self.per_second = per_second
        self.seen = 0  # slow requests (all, logged or not)
        self._window = 0.0
        self._in_window = 0
        self._began: ContextVar[float] = ContextVar("fastplug_profiling_began", default=0.0)
        self._random = random.random

    # the metrics plugin's request hook
    def begin(self) -> Callable[[str, str, int], None]:
        """Called as each request enters (in its task); returns the shared ``end``."""
        self._began.set(perf_counter())
        return self.end

    def end(self, method: str, route: str, status: int) -> None:
        """Called with the request's route label and status when it is answered."""
        began = self._began.get()
        if began:
            elapsed = perf_counter() - began
            if elapsed > self.threshold:
                self.observe(method, route, status, elapsed)

    def observe(self, method: str, route: str, status: int, elapsed: float, count: int | None = None) -> None:
        """One request that took ``elapsed`` seconds (already known to be slow), ``count`` SQL
        statements (None: ask ``queries``)."""
        self.seen += 1
        if self.sample_rate < 1.0 and self._random() >= self.sample_rate:
            return
        now = monotonic()
        if now - self._window >= 1.0:
            self._window, self._in_window = now, 0
        if self._in_window >= self.per_second:
            return
        self._in_window += 1
        if count is None and self.queries is not None:
            count = self.queries()
        log.warning(
            "slow request: %s %s -> %d in %.0f ms%s",
            method,
            route,
            status,
            elapsed * 1000,
            f", {count} SQL statements" if count is not None else "",
        )


class SlowRequestMiddleware:
    """Pure ASGI: times each HTTP request for :class:`SlowRequests` (when metrics is off)."""

    def __init__(self, app: ASGIApp, slow: SlowRequests, queries_key: str | None = None) -> None:
        self.app = app
        self.slow = slow
        self.queries_key = queries_key  # the db plugin's statement counter, in the lifespan state
        self._inner_now: Callable[[Scope], Any] | None = getattr(app, "answer_now", None)

    def answer_now(self, scope: Scope) -> Any:
        """The inner edge middleware's immediate answer: it takes no time worth logging."""
        inner = self._inner_now
        return inner(scope) if inner is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = perf_counter()
        status = [500]
        root_path = scope.get("root_path", "")
        counter = scope.get("state", {}).get(self.queries_key) if self.queries_key else None
        if counter is not None:
            counter.start()  # the innermost counting of this request's context is read at the end

        def send_observed(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = perf_counter() - began
            if elapsed > self.slow.threshold:
                route = scope.get("route")  # routing updated this scope: a mount's part is in root_path
                path = getattr(route, "path_format", None) or getattr(route, "path", None)
                mount = scope.get("root_path", "")[len(scope.get("app_root_path", root_path)) :]
                label = mount + path if path is not None else UNMATCHED
                count = counter.current() if counter is not None else None
                self.slow.observe(scope["method"], label, status[0], elapsed, count)
