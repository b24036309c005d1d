"""On-demand profiles: one request, sampled by pyinstrument, as HTML or speedscope JSON.

With ``[profiling] on_demand = true``, a request carrying ``?_profile`` (``=html``, the default,
or ``=speedscope``) or an ``X-Profile`` header of the same values is run for real under a
pyinstrument profiler that samples only this request's context (``async_mode="enabled"``:
concurrent requests are not in it, time spent awaiting shows as ``[await]``). The
``_profile`` parameter is taken off the query first, so the route sees (and the cache keys)
the request as it would be without it. The answer is then the profile (``200``, the route's
own status in ``X-Profiled-Status``, ``Cache-Control: no-store``), or, with ``profile_dir``
set, the route's own answer with ``X-Profile-File: <stem>`` naming the files written there
(``<stem>.html`` and ``<stem>.speedscope.json``, written off the event loop after the answer).

Who may ask: the metrics plugin's operator rule (``[metrics] allow`` and ``token``) when
that plugin runs, else ``[profiling] allow`` (loopback by default); others get 401/403.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastplug.core import AccessRule

log = logging.getLogger("fastplug.profiling")
QUERY = "_profile"
HEADER = b"x-profile"
FORMATS = ("html", "speedscope")
_QUERY_BYTES = QUERY.encode()
_SLUG = re.compile(r"[^A-Za-z0-9]+")


def _flag(query: bytes) -> bytes | None:
    """The raw value of the ``_profile`` parameter (``b""`` when it has none), or None."""
    for item in query.split(b"&"):
        name, _, value = item.partition(b"=")
        if unquote_to_bytes(name.replace(b"+", b" ")) == _QUERY_BYTES:
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


def _format(value: bytes) -> str:
    text = value.decode("latin-1").strip().lower() or "html"
    return text if text in FORMATS else ("html" if text in ("1", "true") else "")


def wanted(scope: Scope) -> str | None:
    """The profile format a request asks for (``"html"``/``"speedscope"``), ``""`` for an
    unknown one, or None when it asks for none."""
    query = scope.get("query_string", b"")
    if _QUERY_BYTES in query:
        value = _flag(query)
        if value is not None:
            return _format(value)
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            return _format(value)
    return None


def _without_flag(scope: Scope) -> Scope:
    """``scope`` without the ``_profile`` parameter; every other byte of the query as it came."""
    query = scope.get("query_string", b"")
    if _QUERY_BYTES not in query:
        return scope
    kept = [
        item
        for item in query.split(b"&")
        if unquote_to_bytes(item.partition(b"=")[0].replace(b"+", b" ")) != _QUERY_BYTES
    ]
    return {**scope, "query_string": b"&".join(kept)}


def _reply(status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]]) -> list[Message]:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class OnDemandProfiler:
    """Pure ASGI (edge): profiles the requests that ask for it and may."""

    def __init__(
        self,
        app: ASGIApp,
        interval: float,
        fallback: AccessRule,
        operator_key: str | None,
        profile_dir: str | None = None,
    ) -> None:
        self.app = app
        self.interval = interval
        self.fallback = fallback
        self.operator_key = operator_key
        self.profile_dir = Path(profile_dir) if profile_dir else None
        self._inner_now: Callable[[Scope], Any] | None = getattr(app, "answer_now", None)

    def answer_now(self, scope: Scope) -> Any:
        """The inner edge middleware's immediate answer, unless the request asks for a profile."""
        inner = self._inner_now
        if inner is None or wanted(scope) is not None:
            return None
        return inner(scope)

    def _rule(self, scope: Scope) -> AccessRule:
        if self.operator_key is not None:
            rule = scope.get("state", {}).get(self.operator_key)
            if isinstance(rule, AccessRule):
                return rule
        return self.fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = wanted(scope) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        if not kind:
            for message in _reply(400, b'{"detail":"_profile is html or speedscope"}', b"application/json", []):
                await send(message)
            return
        refused = self._rule(scope).decide(scope)
        if refused is not None:
            body = b'{"detail":"profiles are for the operator"}'
            extra = [(b"www-authenticate", b"Bearer")] if refused == 401 else []
            for message in _reply(refused, body, b"application/json", extra):
                await send(message)
            return
        await self._profiled(_without_flag(scope), receive, send, kind)

    async def _profiled(self, scope: Scope, receive: Receive, send: Send, kind: str) -> None:
        from pyinstrument import Profiler

        stem = self._stem(scope) if self.profile_dir is not None else None
        status = [500]

        async def keep(message: Message) -> None:  # the route's own answer is replaced by the profile
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        async def tagged(message: Message) -> None:  # stored: the route's answer, naming the files
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), (b"x-profile-file", stem.encode())]}
            await send(message)

        profiler = Profiler(interval=self.interval, async_mode="enabled")
        try:
            profiler.start()
        except RuntimeError as exc:  # this context is profiled already (manage.py profile, pyinstrument)
            log.warning("profiling: %s %s not profiled on demand: %s", scope["method"], scope["path"], exc)
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, keep if stem is None else tagged)
        finally:
            profiler.stop()
            if stem is not None:
                await asyncio.to_thread(self._store, profiler, stem)  # a slow disk is not the route's block
        if stem is not None:
            return
        extra = [(b"x-profiled-status", str(status[0]).encode())]
        if kind == "speedscope":
            body, content_type = _speedscope(profiler), b"application/json"
        else:
            body, content_type = profiler.output_html().encode(), b"text/html; charset=utf-8"
        for message in _reply(200, body, content_type, extra):
            await send(message)

    def _stem(self, scope: Scope) -> str:
        slug = _SLUG.sub("-", scope.get("path", "")).strip("-")[:60] or "root"
        return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9}-{scope['method']}-{slug}"

    def _store(self, profiler: Any, stem: str) -> None:
        directory = self.profile_dir
        assert directory is not None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{stem}.html").write_text(profiler.output_html(), encoding="utf-8")
            (directory / f"{stem}.speedscope.json").write_bytes(_speedscope(profiler))
        except OSError as exc:
            log.warning("profiling: could not store the profile %s in %s: %s", stem, directory, exc)


def _speedscope(profiler: Any) -> bytes:
    from pyinstrument.renderers import SpeedscopeRenderer

    return profiler.output(renderer=SpeedscopeRenderer()).encode()
