"""The metrics port (``[metrics] port``): the scrape path served apart from the app.

Each server process (the one uvicorn process, or every gunicorn worker) runs a second, tiny
``uvicorn.Server`` in its own event loop, started by the plugin's lifespan, whose app answers
only the scrape path. With several workers, prometheus-client's multiprocess mode sums every
worker's files, so any worker can answer: each binds the port with ``SO_REUSEPORT`` and the
kernel spreads scrapes over them; a worker that dies or restarts leaves the others serving.
(A server in the gunicorn master would need a thread beside the arbiter and before forking,
and would not see the workers' own collectors.)

The port never reads ``X-Forwarded-*`` (it is meant for the scraper, not behind the app's
proxy), refuses WebSockets, caps its connections, and applies the same access rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from fastplug.core import AccessRule
from fastplug.plugins.metrics.instruments import Instruments
from fastplug.plugins.metrics.routes import scrape

log = logging.getLogger("fastplug.metrics")
CONNECTIONS = 64  # beyond, 503: a scraper needs a few
STOP_TIMEOUT = 5.0  # seconds a scrape in progress gets at shutdown
NOT_FOUND = PlainTextResponse("not found\n", 404)
NOT_ALLOWED = PlainTextResponse("method not allowed\n", 405, headers={"Allow": "GET, HEAD"})


class ScrapeApp:
    """The metrics port's whole ASGI app: ``GET``/``HEAD`` of the scrape path, 404 elsewhere."""

    def __init__(self, path: str, rule: AccessRule, instruments: Instruments) -> None:
        self.path, self.rule, self.instruments = path, rule, instruments

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off and WebSockets are not upgraded
            return
        response: Response
        if scope["path"] != self.path:
            response = NOT_FOUND
        elif scope["method"] not in ("GET", "HEAD"):
            response = NOT_ALLOWED
        else:
            response = scrape(self.rule, self.instruments, scope)
        await response(scope, receive, send)


def listen(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening, non-blocking socket on ``host:port`` (shared with sibling workers when ``reuse_port``)."""
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise RuntimeError("[metrics] port with several workers needs SO_REUSEPORT, which this system lacks")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise RuntimeError(f"[metrics] host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port} ([metrics] port): {exc.strerror}") from None
    return sock


def _server_class() -> type[Any]:
    import uvicorn

    class EmbeddedServer(uvicorn.Server):  # type: ignore[misc]
        """A server beside the app's: the app's server owns the process's signals."""

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.listening = asyncio.Event()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            self.listening.set()

    return EmbeddedServer


@contextlib.asynccontextmanager
async def metrics_port(app: ScrapeApp, host: str, port: int, reuse_port: bool) -> AsyncIterator[None]:
    """Serve ``app`` on ``host:port`` for the duration of the block (in this event loop)."""
    import uvicorn

    sock = listen(host, port, reuse_port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        proxy_headers=False,
        server_header=False,
        log_config=None,  # leave the process's logging as the app's server set it
        limit_concurrency=CONNECTIONS,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=STOP_TIMEOUT,
    )
    server = _server_class()(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="metrics-port")
    listening = asyncio.create_task(server.listening.wait())
    await asyncio.wait((task, listening), return_when=asyncio.FIRST_COMPLETED)
    if not listening.done():
        listening.cancel()
        sock.close()
        task.result()  # its error, if any
        raise RuntimeError(f"the metrics port {host}:{port} stopped at once")
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "metrics: %s served on http://%s:%d only%s", app.path, shown, port, " (port shared by the workers)" * reuse_port
    )
    try:
        yield
    finally:
        server.should_exit = True
        await task
