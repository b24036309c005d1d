"""Pure-ASGI response compression: gzip, or brotli when installed and accepted.

Everything that can be decided once is decided when the middleware is built (codings,
content-type rules); per request it reads ``Accept-Encoding`` once (negotiations are
memoized per header value) and looks at the response headers once. A response it does not
compress passes through after that one look, without copies.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastplug.core import negotiate

GZIP, BR = "gzip", "br"
THREAD_MINIMUM_SIZE = 1 << 20  # one-shot bodies this large are compressed off the event loop
_MEMO_LIMIT = 256  # distinct Accept-Encoding / Content-Type values remembered
_MEMO_VALUE_LIMIT = 256  # longer values are negotiated each time, never remembered (bytes bounded)
_NO_BODY_STATUS = frozenset((204, 205, 206, 304))
_MISSING: Any = object()
Header = tuple[bytes, bytes]


def _merge_vary(value: bytes) -> bytes:
    tokens = {token.strip().lower() for token in value.split(b",")}
    if b"*" in tokens or b"accept-encoding" in tokens:
        return value
    return value + b", Accept-Encoding" if value.strip() else b"Accept-Encoding"


def with_vary(headers: Iterable[Header]) -> list[Header]:
    """``headers`` with ``Accept-Encoding`` in ``Vary``."""
    out, found = [], False
    for name, value in headers:
        if name == b"vary" and not found:
            value, found = _merge_vary(value), True
        out.append((name, value))
    if not found:
        out.append((b"vary", b"Accept-Encoding"))
    return out


def encoded_headers(headers: Iterable[Header], coding: str, length: int | None) -> list[Header]:
    """Headers for the encoded body: ``Content-Encoding``, ``Vary``, a weak ``ETag`` (the
    bytes changed), the new ``Content-Length`` (None: streamed), no ``Accept-Ranges``
    (ranges would refer to the unencoded bytes)."""
    out: list[Header] = []
    for name, value in with_vary(headers):
        if name in (b"content-length", b"accept-ranges"):
            continue
        if name == b"etag" and not value.startswith(b"W/"):
            value = b"W/" + value
        out.append((name, value))
    out.append((b"content-encoding", coding.encode()))
    if length is not None:
        out.append((b"content-length", str(length).encode()))
    return out


def _importable(module: str) -> bool:
    """True when ``module`` (an optional package) can be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def isal_available() -> bool:
    """True when ISA-L's deflate (the ``isal`` package) can be imported."""
    return _importable("isal.isal_zlib")


def deflate_module(engine: str) -> Any:
    """The zlib-compatible module gzip is made with: ``isal.isal_zlib`` for ``"isal"``,
    the standard library's ``zlib`` for ``"zlib"``."""
    if engine == "isal":
        from isal import isal_zlib

        return isal_zlib
    return zlib


class Encoder:
    """One coding at one level: one-shot ``compress`` and streaming ``stream()`` objects.
    gzip is made by ``deflate`` (zlib, or ISA-L's drop-in ``isal_zlib``)."""

    def __init__(self, coding: str, level: int, deflate: Any = zlib) -> None:
        self.coding = coding
        self.level = level
        self._deflate = deflate
        if coding == BR:
            import brotli

            self._brotli = brotli

    def compress(self, body: bytes) -> bytes:
        """The whole body, encoded."""
        if self.coding == GZIP:
            return bytes(self._deflate.compress(body, self.level, wbits=31))
        return bytes(self._brotli.compress(body, quality=self.level))

    def stream(self) -> Callable[[bytes, bool], bytes]:
        """``feed(chunk, last)``: encoded bytes for ``chunk``, flushed so the client can
        decode it now (chunk by chunk, never buffering the stream); ``last`` ends it."""
        if self.coding == GZIP:
            deflate = self._deflate
            gz = deflate.compressobj(self.level, deflate.DEFLATED, 31)
            finish, sync = deflate.Z_FINISH, deflate.Z_SYNC_FLUSH

            def feed_gzip(chunk: bytes, last: bool) -> bytes:
                return gz.compress(chunk) + gz.flush(finish if last else sync)

            return feed_gzip
        br = self._brotli.Compressor(quality=self.level)

        def feed_br(chunk: bytes, last: bool) -> bytes:
            return bytes(br.process(chunk)) + bytes(br.finish() if last else br.flush())

        return feed_br


def brotli_available() -> bool:
    """True when the ``brotli`` package can be imported."""
    return _importable("brotli")


class CompressionMiddleware:
    """Compress eligible responses with the best coding the client accepts.

    Never touched: ``HEAD``, requests with ``Range``, ``exclude_paths``, 1xx/204/205/206/304,
    responses with ``Content-Encoding``, ``Content-Range`` or ``Cache-Control: no-transform``,
    media types outside ``content_types``, ``text/event-stream``, and bodies under
    ``minimum_size``. ``Vary: Accept-Encoding`` goes on every response that could have
    been compressed, also when this client accepts no coding.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = 1000,
        gzip_level: int = 5,
        gzip_engine: str = "zlib",
        isal_level: int = 2,
        brotli: bool = True,
        brotli_quality: int = 4,
        content_types: Sequence[str] = ("application/json", "text/*"),
        exclude_paths: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self._length_digits = len(str(minimum_size))  # a Content-Length with fewer digits is smaller
        from fastplug.plugins.compression.api import codings_for

        self.codings = codings_for(brotli)  # preference on equal q; the cache keys by the same
        deflate = deflate_module(gzip_engine)
        levels = {GZIP: isal_level if gzip_engine == "isal" else gzip_level, BR: brotli_quality}
        self.encoders = {coding: Encoder(coding, levels[coding], deflate) for coding in self.codings}
        types = [t.lower() for t in content_types]
        self.exact_types = frozenset(t for t in types if not t.endswith("/*"))
        self.type_prefixes = tuple(t[:-1] for t in types if t.endswith("/*"))
        self.exclude_paths = tuple(exclude_paths)
        self._negotiated: dict[bytes, Encoder | None] = {}
        self._compressible: dict[bytes, bool] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Plain functions returning the next awaitable: no coroutine frame of our own per
        # call or per message (measured: each layer of frames costs ~1% of a small route).
        if (
            scope["type"] != "http"
            or scope["method"] == "HEAD"
            or (self.exclude_paths and scope["path"].startswith(self.exclude_paths))
        ):
            return self.app(scope, receive, send)
        accept = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value
            elif name == b"range":
                return self.app(scope, receive, send)
        encoder = None
        if accept is not None:
            encoder = self._negotiated.get(accept, _MISSING)
            if encoder is _MISSING:
                encoder = self._negotiate(accept)
        eligible = self.eligible
        state: _Responder | bool | None = None  # None: before the start, False: as it is

        def send_compressed(message: Message) -> Awaitable[None]:
            nonlocal state
            if state is False:
                return send(message)
            if state is None:
                if message["type"] != "http.response.start":  # e.g. early hints
                    return send(message)
                if not eligible(message):
                    state = False
                    return send(message)
                if encoder is None:  # could vary, but this client accepts no coding we have
                    state = False
                    return send({**message, "headers": with_vary(message.get("headers", ()))})
                state = _Responder(self, send, encoder, message)
                return _held()
            return state.send(message)

        return self.app(scope, receive, send_compressed)

    def _negotiate(self, accept: bytes) -> Encoder | None:
        coding = negotiate(accept, self.codings)
        encoder = self.encoders[coding] if coding else None
        if len(accept) > _MEMO_VALUE_LIMIT:
            return encoder
        if len(self._negotiated) >= _MEMO_LIMIT:
            self._negotiated.clear()
        self._negotiated[accept] = encoder
        return encoder

    def compressible(self, content_type: bytes) -> bool:
        """True for a media type in ``content_types`` (never ``text/event-stream``)."""
        known = self._compressible.get(content_type)
        if known is None:
            media = content_type.partition(b";")[0].strip().lower().decode("latin-1")
            known = media != "text/event-stream" and (
                media in self.exact_types or media.startswith(self.type_prefixes or "\0")
            )
            if len(content_type) > _MEMO_VALUE_LIMIT:
                return known
            if len(self._compressible) >= _MEMO_LIMIT:
                self._compressible.clear()
            self._compressible[content_type] = known
        return known

    def eligible(self, message: Message) -> bool:
        """Whether a response start could be compressed (status, headers, known length)."""
        status = message["status"]
        if status < 200 or status in _NO_BODY_STATUS:
            return False
        content_type = None
        for name, value in message.get("headers", ()):
            if name == b"content-length":
                # most small answers stop here: fewer lookups per request (the whole check
                # runs cold, between the app's own work: ~1 us measured, ~0.3 us warm)
                if len(value) < self._length_digits and value.isdigit():
                    return False
                if value.isdigit() and int(value) < self.minimum_size:
                    return False
            elif name == b"content-type":
                content_type = value
            elif name in (b"content-encoding", b"content-range") or (
                name == b"cache-control" and b"no-transform" in value.lower()
            ):
                return False
        return content_type is not None and self.compressible(content_type)


_PASS, _BODY, _STREAM = range(3)


async def _held() -> None:
    """What ``send`` returns for a response start it keeps until the first body."""


class _Responder:
    """The rest of a response that may be compressed: decides at the first body, then
    passes it through, compresses it whole, or compresses a stream chunk by chunk."""

    __slots__ = ("encoder", "feed", "middleware", "send_", "start", "state")

    def __init__(self, middleware: CompressionMiddleware, send: Send, encoder: Encoder, start: Message) -> None:
        self.middleware = middleware
        self.send_ = send
        self.encoder = encoder
        self.start = start
        self.state = _BODY
        self.feed: Callable[[bytes, bool], bytes] | None = None

    async def send(self, message: Message) -> None:
        state = self.state
        if state == _PASS:
            await self.send_(message)
        elif message["type"] != "http.response.body":  # pathsend, trailers...: as they are
            if state == _BODY:
                self.state = _PASS
                await self.send_(self.start)
            await self.send_(message)
        elif state == _BODY:
            await self._on_first_body(message)
        else:
            await self._on_chunk(message)

    async def _on_first_body(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        start, headers = self.start, self.start.get("headers", ())
        if message.get("more_body", False):
            self.state = _STREAM
            self.feed = self.encoder.stream()
            await self.send_({**start, "headers": encoded_headers(headers, self.encoder.coding, None)})
            await self._on_chunk(message)
            return
        self.state = _PASS
        if len(body) < self.middleware.minimum_size:
            await self.send_(start)
            await self.send_(message)
            return
        if len(body) >= THREAD_MINIMUM_SIZE:
            import anyio.to_thread

            encoded = await anyio.to_thread.run_sync(self.encoder.compress, body)
        else:
            encoded = self.encoder.compress(body)
        if len(encoded) >= len(body):  # incompressible: send it as it is
            await self.send_({**start, "headers": with_vary(headers)})
            await self.send_(message)
            return
        length = None if start.get("trailers") else len(encoded)
        await self.send_({**start, "headers": encoded_headers(headers, self.encoder.coding, length)})
        await self.send_({**message, "body": encoded})

    async def _on_chunk(self, message: Message) -> None:
        assert self.feed is not None
        more = message.get("more_body", False)
        chunk: bytes = message.get("body", b"")
        if more and not chunk:
            return
        if not more:
            self.state = _PASS
        await self.send_({**message, "body": self.feed(chunk, not more)})
