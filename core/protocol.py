"""uvicorn's HTTP protocol with the limits a server facing the internet needs.

uvicorn's httptools protocol reads a request head of any size (and httptools joins a header's
pieces by copying, so the work grows with the square of its size), and leaves a connection
that sends nothing, or sends its headers a byte at a time, open for ever. :func:`protocol_class`
gives the same protocol with ``[server]``'s limits: a request target over
``limit_request_line`` is 414, more than ``limit_request_fields`` header fields, a field over
``limit_request_field_size`` or a head over their sum is 431, all answered at once; a head not
complete ``header_timeout`` seconds after its first byte (or after the connection opened) is
408 and closed. Beyond ``max_connections`` connections, idle ones (between requests or still
sending their head) are closed, oldest first, and a new connection that finds none is 503 +
``Retry-After``. The hot path gains two integer additions per read and one per header.

With ``answers`` on, a plain GET or HEAD (HTTP/1.1 keep-alive, no body, nothing pipelined
before it) is first offered to the app's ``answer_now`` (see
:class:`fastplug.core.MiddlewareSpec`): an answer it gives at once (a fresh memory-cache
hit, with its metrics recorded) is written here, with the server's default headers and
access log line, and the request never gets a task, an ASGI cycle or a scope of messages.
Anything else goes through the app as uvicorn runs it.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from fastplug.config.models import ServerSettings
from fastplug.core.specs import Answer

try:
    import httptools
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools on CPython
    httptools = None

log = logging.getLogger("fastplug.protocol")
NOT_NOW = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
"""Request headers that send a GET/HEAD through the app: a body, or more than one exchange."""
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto"})
"""Headers uvicorn's proxy middleware (outside the app) reads: with it on, such requests go the usual way."""


@dataclass(frozen=True)
class HeadLimits:
    """The limits of one server, from ``[server]``."""

    request_line: int
    fields: int
    field_size: int
    header_timeout: float
    max_connections: int
    retry_after: int = 1

    @property
    def head(self) -> int:
        """Bytes a whole request head may have: the line, every field, their line ends."""
        return self.request_line + self.fields * (self.field_size + 4) + 4

    @classmethod
    def of(cls, server: ServerSettings, max_connections: int | None = None) -> HeadLimits:
        return cls(
            server.limit_request_line,
            server.limit_request_fields,
            server.limit_request_field_size,
            server.header_timeout,
            max_connections if max_connections is not None else server.max_connections,
        )


def answer(status: int, reason: str, detail: str, extra: bytes = b"") -> bytes:
    """A complete ``Connection: close`` response with a JSON ``{"detail": ...}`` body."""
    body = json.dumps({"detail": detail}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


class _HeadLimitError(Exception):
    """Raised in a parser callback to stop parsing: the head broke a limit."""


if httptools is not None:

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """:class:`HttpToolsProtocol` with :class:`HeadLimits` (set on a subclass).

        Slow heads are found by one sweep over the connections every ``header_timeout / 4``
        seconds, not by a timer per request: a request only notes when its head began.
        """

        limits: ClassVar[HeadLimits]
        answers: ClassVar[bool] = False
        _REFUSALS: ClassVar[dict[str, bytes]] = {}
        _sweeping: ClassVar[bool] = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True
            self._head_bytes = 0
            self._fields = 0
            self._refusal: bytes | None = None
            self._head_began: float | None = None  # when the head being read began
            self._since = 0.0  # when this connection last became idle
            self._answer_now, self._not_now = _answerer(self.app) if self.answers else (None, NOT_NOW)
            self._answered = False  # the request being parsed was answered in the protocol

        # connections
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._since = self._head_began = self.loop.time()
            cls = type(self)
            if not cls._sweeping and self.limits.header_timeout > 0:
                cls._sweeping = True
                self.loop.call_later(self.limits.header_timeout / 4, cls._sweep, self.connections, self.loop)
            if len(self.connections) > self.limits.max_connections and not self._make_room():
                self._refuse(self._REFUSALS["busy"])

        @classmethod
        def _sweep(cls, connections: set[Any], loop: asyncio.AbstractEventLoop) -> None:
            """Answer 408 to (or close) every connection whose head is overdue; again later."""
            now = loop.time()
            deadline = now - cls.limits.header_timeout
            for connection in list(connections):
                began = getattr(connection, "_head_began", None)
                if began is not None and began < deadline:
                    connection._head_timed_out()
            if loop.is_closed():
                cls._sweeping = False
            else:
                loop.call_later(cls.limits.header_timeout / 4, cls._sweep, connections, loop)

        def _idle(self) -> bool:
            """Between requests, or still sending a head: nothing of it is being served."""
            return self._in_head and (self.cycle is None or self.cycle.response_complete)

        def _make_room(self) -> bool:
            """Close the longest idle other connection; ``False`` when none is idle."""
            oldest: GuardedHttpToolsProtocol | None = None
            for connection in self.connections:
                if (
                    connection is not self
                    and isinstance(connection, GuardedHttpToolsProtocol)
                    and connection._idle()
                    and (oldest is None or connection._since < oldest._since)
                ):
                    oldest = connection
            if oldest is None:
                return False
            self.connections.discard(oldest)
            oldest.transport.close()
            return True

        def _refuse(self, response: bytes) -> None:
            self._head_began = None
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

        def _head_timed_out(self) -> None:
            if self._head_bytes:
                self._refuse(self._REFUSALS["slow"])
            else:
                self._head_began = None
                if not self.transport.is_closing():
                    self.transport.close()

        # reading
        def data_received(self, data: bytes) -> None:
            self._unset_keepalive_if_required()
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > self.limits.head:
                    self._refuse(self._REFUSALS["head"])
                    return
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                if self._refusal is not None:
                    self._refuse(self._refusal)
                    return
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._fields = 0
            if self._head_began is None:
                self._head_began = self.loop.time()

        def on_url(self, url: bytes) -> None:
            self.url += url
            if len(self.url) > self.limits.request_line:
                self._refusal = self._REFUSALS["line"]
                raise _HeadLimitError

        def on_header(self, name: bytes, value: bytes) -> None:
            # uvicorn's on_header, inlined (a hot path), after the two limits
            self._fields += 1
            if self._fields > self.limits.fields:
                self._refusal = self._REFUSALS["fields"]
                raise _HeadLimitError
            if len(name) + len(value) > self.limits.field_size:
                self._refusal = self._REFUSALS["field"]
                raise _HeadLimitError
            name = name.lower()
            value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace, which RFC 9110 5.5 excludes
            if name == b"expect" and value.lower() == b"100-continue":
                self.expect_100_continue = True
            self.headers.append((name, value))

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_began = None
            # an answer given here arms the keep-alive timer while the parser goes on with the
            # rest of the buffer: a request pipelined behind it must not run under that timer
            self._unset_keepalive_if_required()
            if self._answer_now is not None and self._answered_now(self._answer_now):
                return
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            if self._answered:
                self._answered = False
            else:
                super().on_message_complete()
            self._in_head, self._head_bytes = True, 0
            self._since = self.loop.time()

        # answers given in the protocol
        def _answered_now(self, answer_now: Callable[[dict[str, Any]], Answer | None]) -> bool:
            """Offer this request to ``answer_now``; write its answer and return True, or
            return False (nothing written) for the usual path."""
            parser = self.parser
            method = parser.get_method()
            if method != b"GET" and method != b"HEAD":
                return False
            cycle = self.cycle
            if (cycle is not None and not cycle.response_complete) or self.pipeline or self.flow.write_paused:
                return False
            if parser.get_http_version() != "1.1" or not parser.should_keep_alive():
                return False
            not_now = self._not_now
            for name, _ in self.headers:
                if name in not_now:
                    return False
            limit = self.limit_concurrency
            if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
                return False
            scope = self.scope
            try:
                scope["method"] = method.decode("ascii")
                parsed = httptools.parse_url(self.url)
                raw_path = parsed.path
                path = raw_path.decode("ascii")
                if "%" in path:
                    path = urllib.parse.unquote(path)
                scope["path"] = self.root_path + path
                scope["raw_path"] = self.root_path.encode("ascii") + raw_path
                scope["query_string"] = parsed.query or b""
                # its own context, as the task it replaces would have (plugins' request hooks set context vars)
                context = contextvars.Context() if self.config.reset_contextvars else contextvars.copy_context()
                answer = context.run(answer_now, scope)
            except Exception:  # the usual path meets the same request and answers it properly
                log.exception("answering %s in the protocol failed; the app answers it", scope.get("path"))
                return False
            if answer is None:
                return False
            status, headers, body = answer
            content = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                content.extend((name.lower(), b": ", value, b"\r\n"))
            framed = False
            for name, value in headers:
                name = name.lower()
                framed = framed or name == b"content-length"
                content.extend((name, b": ", value, b"\r\n"))
            if not framed and method != b"HEAD" and status != 304 and status != 204:  # keep-alive needs it
                content.append(b"content-length: %d\r\n" % len(body))
            content.append(b"\r\n")
            if method != b"HEAD" and status != 304 and status != 204:
                content.append(body)
            if self.access_log:
                self.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(scope),
                    scope["method"],
                    get_path_with_query_string(scope),
                    scope["http_version"],
                    status,
                )
            self.transport.write(b"".join(content))
            self._answered = True
            self.on_response_complete()
            return True


def _answerer(app: Any) -> tuple[Callable[[dict[str, Any]], Answer | None] | None, frozenset[bytes]]:
    """The app's ``answer_now`` through uvicorn's wrapper, and the request headers that rule it out."""
    not_now = NOT_NOW
    if httptools is not None and isinstance(app, ProxyHeadersMiddleware):
        app, not_now = app.app, NOT_NOW | FORWARDED
    return getattr(app, "answer_now", None), not_now


def protocol_class(limits: HeadLimits, answers: bool = True) -> type[asyncio.Protocol] | str:
    """The HTTP protocol for uvicorn's ``http=``: the guarded httptools one with ``limits``
    (``"h11"``, which bounds the head itself, where httptools is missing); ``answers``: offer
    plain GETs to the app's ``answer_now`` first."""
    if httptools is None:  # pragma: no cover
        return "h11"
    retry = f"retry-after: {limits.retry_after}\r\n".encode()
    refusals = {
        "line": answer(414, "URI Too Long", f"the request target is over {limits.request_line} bytes"),
        "fields": answer(431, "Request Header Fields Too Large", f"more than {limits.fields} header fields"),
        "field": answer(431, "Request Header Fields Too Large", f"a header field is over {limits.field_size} bytes"),
        "head": answer(431, "Request Header Fields Too Large", f"the request head is over {limits.head} bytes"),
        "slow": answer(408, "Request Timeout", f"the request head took over {limits.header_timeout:g}s"),
        "busy": answer(503, "Service Unavailable", "too many connections", retry),
    }
    attributes = {"limits": limits, "answers": answers, "_REFUSALS": refusals}
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), attributes)
