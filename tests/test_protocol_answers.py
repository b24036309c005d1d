"""Answers given in fastplug's HTTP protocol (``[server] protocol_answers``): a fresh
memory-cache hit is written during ``data_received``, before any task or ASGI cycle exists,
byte for byte what the app would have sent (metrics and access log included); anything
else (a miss, a body, ``Connection: close``, HTTP/1.0, forwarded headers, a pipelined
request behind one still running) goes through the app as uvicorn runs it.

The protocol is driven in-process through a recording transport, on the real app and
lifespan; ``tests/test_serve.py``-style runs of ``manage.py serve`` cover the real sockets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import cache_shop
import httpx
import pytest
from fastapi import FastAPI
from uvicorn.config import Config
from uvicorn.server import ServerState

from fastplug.core.protocol import HeadLimits, protocol_class
from tests.test_serve import serve_process, wait_ready

Make = Callable[..., FastAPI]
LIMITS = HeadLimits(4094, 100, 8190, 10.0, 1000)
DATE = [(b"date", b"Thu, 03 Dec 2026 09:00:00 GMT"), (b"server", b"uvicorn")]


class Wire(asyncio.Transport):
    """A transport that records what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


class Connection:
    """One client connection to a protocol instance."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.wire = Wire()
        protocol.connection_made(self.wire)

    def send(self, raw: bytes) -> bytes:
        """Feed ``raw``; what was written before anything else could run."""
        self.protocol.data_received(raw)
        return self.wire.take()

    async def ask(self, raw: bytes, answers: int = 1) -> bytes:
        """Feed ``raw`` and wait until ``answers`` responses came back."""
        got = self.send(raw)
        for _ in range(500):
            if got.count(b"HTTP/1.1 ") >= answers and _complete(got, answers):
                return got
            await asyncio.sleep(0.01)
            got += self.wire.take()
        raise AssertionError(f"no complete answer to {raw!r}: {got!r}")


def _complete(raw: bytes, answers: int) -> bool:
    """``raw`` holds ``answers`` whole responses (by their Content-Length)."""
    rest = raw
    for _ in range(answers):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            return False
        found = re.search(rb"content-length: (\d+)", head)
        length = int(found.group(1)) if found and not head.startswith(b"HTTP/1.1 304") else 0
        if len(rest) < length:
            return False
        rest = rest[length:]
    return True


def _same(raw: bytes) -> bytes:
    """An answer with its per-request timing value blanked."""
    return re.sub(rb"server-timing: app;dur=[0-9.]+", b"server-timing: app;dur=X", raw)


@pytest.fixture
def app(fastplug_app_factory: Make) -> FastAPI:
    """The cache tests' shop behind metrics (Server-Timing on), the memory cache and compression."""
    cache_shop.calls.clear()
    return fastplug_app_factory(
        extra_plugins={"shop": cache_shop},
        plugins=["health", "metrics", "compression", "cache", "shop"],
        metrics={"timing_header": True},
        cache={"backend": "memory"},
    )


@pytest.fixture
async def started(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """The app's lifespan state (the services the cache finds in each request's scope)."""
    async with app.router.lifespan_context(app) as state:
        yield dict(state or {})


def protocol(app: FastAPI, state: dict[str, Any], answers: bool = True, **config: Any) -> Any:
    cls = protocol_class(LIMITS, answers)
    conf = Config(app=app, http=cls, lifespan="off", log_config=None, **config)
    conf.load()
    server_state = ServerState()
    server_state.default_headers = list(DATE)
    return cls(config=conf, server_state=server_state, app_state=state)


def get(path: str, *extra: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: shop.test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def scrape(app: FastAPI, state: dict[str, Any], route: str, method: str = "GET") -> float:
    """``http_requests_total{method, route}`` summed over statuses, from ``/metrics``."""
    raw = await Connection(protocol(app, state, answers=False)).ask(get("/metrics"))
    total = 0.0
    pattern = re.compile(rb"^http_requests_total\{(.*)\} (\S+)$", re.M)
    for labels, value in pattern.findall(raw):
        if f'method="{method}"'.encode() in labels and f'route="{route}"'.encode() in labels:
            total += float(value)
    return total


async def test_a_fresh_hit_is_written_at_once_as_the_app_would_write_it(app: FastAPI, started: dict[str, Any]) -> None:
    fast, usual = Connection(protocol(app, started)), Connection(protocol(app, started, answers=False))
    first = await fast.ask(get("/items/7"))  # a miss: through the app, which stores it
    assert b"x-cache: MISS" in first and cache_shop.calls["item"] == 1
    hit = fast.send(get("/items/7"))  # written during data_received: no task ran
    assert hit.startswith(b"HTTP/1.1 200 OK\r\n") and b"x-cache: HIT" in hit and not fast.protocol.tasks
    assert hit.endswith(b'{"id":7,"name":"item 7","calls":1}')
    through_app = await usual.ask(get("/items/7"))
    assert _same(hit) == _same(through_app)
    assert b"server-timing: app;dur=" in hit and b"date: Thu, 03 Dec 2026" in hit
    assert cache_shop.calls["item"] == 1
    assert await scrape(app, started, "/items/{item_id}") == 3  # the protocol's answer is counted


async def test_head_and_a_matching_etag_are_answered_at_once_too(app: FastAPI, started: dict[str, Any]) -> None:
    fast, usual = Connection(protocol(app, started)), Connection(protocol(app, started, answers=False))
    await fast.ask(get("/items/8"))
    head = fast.send(get("/items/8", method="HEAD"))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    usual.send(get("/items/8", method="HEAD"))
    await asyncio.sleep(0.05)
    assert _same(head) == _same(usual.wire.take())
    etag = re.search(rb"etag: (\S+)", head).group(1).decode()  # type: ignore[union-attr]
    not_modified = fast.send(get("/items/8", f"If-None-Match: {etag}"))
    assert not_modified.startswith(b"HTTP/1.1 304 Not Modified\r\n") and not_modified.endswith(b"\r\n\r\n")
    assert _same(not_modified) == _same(await usual.ask(get("/items/8", f"If-None-Match: {etag}")))
    assert await scrape(app, started, "/items/{item_id}", "HEAD") == 2


@pytest.mark.parametrize(
    "request_",
    [
        get("/items/9", "Connection: close"),
        get("/items/9", version="1.0"),
        get("/items/9", "Content-Length: 0"),
        get("/items/9", "Cookie: session=1"),
        get("/items/special"),
        get("/health/live"),
    ],
    ids=["connection-close", "http-1.0", "a-body", "credentials", "not-cached", "no-cache-route"],
)
async def test_anything_but_a_plain_fresh_hit_goes_through_the_app(
    app: FastAPI, started: dict[str, Any], request_: bytes
) -> None:
    fast = Connection(protocol(app, started))
    await fast.ask(get("/items/9"))  # stored
    assert fast.send(request_) == b""  # nothing written before the app ran
    answered = await fast.ask(b"")
    assert answered.startswith((b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 304"))


async def test_an_invalidated_entry_is_not_answered_from_the_protocol(app: FastAPI, started: dict[str, Any]) -> None:
    fast = Connection(protocol(app, started))
    await fast.ask(get("/items/10"))
    assert b"x-cache: HIT" in fast.send(get("/items/10"))
    await fast.ask(b"POST /items/10 HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 0\r\n\r\n")
    assert fast.send(get("/items/10")) == b""
    again = await fast.ask(b"")
    assert b"x-cache: MISS" in again and b'"calls":2' in again


async def test_a_pipelined_hit_waits_for_the_request_before_it(app: FastAPI, started: dict[str, Any]) -> None:
    fast = Connection(protocol(app, started))
    await fast.ask(get("/items/11"))
    both = await fast.ask(get("/items/12") + get("/items/11"), answers=2)  # a miss, then a hit
    first, second = both.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert b'"id":12' in first and b"x-cache: MISS" in first
    assert b'"id":11' in second and b"x-cache: HIT" in second


async def test_a_request_pipelined_behind_an_answer_runs_without_its_keep_alive_timer(
    app: FastAPI, started: dict[str, Any]
) -> None:
    """The answer arms the idle timer (0.1 s here) while the parser reads on: the slow request
    behind it (0.3 s) must still be answered, not cut off as idle."""
    fast = Connection(protocol(app, started, timeout_keep_alive=0.1))
    await fast.ask(get("/items/16"))
    both = await fast.ask(get("/items/16") + get("/slow/a"), answers=2)
    assert b"x-cache: HIT" in both and b'{"calls":1}' in both and not fast.wire.closed


async def test_forwarded_headers_go_through_uvicorns_proxy_handling(app: FastAPI, started: dict[str, Any]) -> None:
    fast = Connection(protocol(app, started, proxy_headers=True, forwarded_allow_ips="127.0.0.1"))
    await fast.ask(get("/items/13"))
    assert b"x-cache: HIT" in fast.send(get("/items/13"))
    assert fast.send(get("/items/13", "X-Forwarded-Proto: https")) == b""  # https: another key, a miss
    assert b"x-cache: MISS" in await fast.ask(b"")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_the_access_log_line_is_the_apps(app: FastAPI, started: dict[str, Any]) -> None:
    logger, lines = logging.getLogger("uvicorn.access"), Lines()
    logger.addHandler(lines)  # uvicorn logs access lines when its access logger has a handler
    level, disabled = logger.level, logger.disabled
    logger.setLevel(logging.INFO)  # as a server's logging config leaves it
    logger.disabled = False
    try:
        fast = Connection(protocol(app, started))
        await fast.ask(get("/items/14?x=1"))  # through the app
        assert b"x-cache: HIT" in fast.send(get("/items/14?x=1"))  # in the protocol
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
        logger.disabled = disabled
    assert lines.lines == ['127.0.0.1:50000 - "GET /items/14?x=1 HTTP/1.1" 200'] * 2


async def test_off_every_request_goes_through_the_app(app: FastAPI, started: dict[str, Any]) -> None:
    usual = Connection(protocol(app, started, answers=False))
    await usual.ask(get("/items/15"))
    assert usual.send(get("/items/15")) == b""
    assert b"x-cache: HIT" in await usual.ask(b"")


@pytest.mark.slow
def test_serve_answers_hits_in_the_protocol_with_metrics_and_access_log(tmp_path: Path) -> None:
    """``manage.py serve`` on the products plugin (SQLite, memory cache, metrics): a hit over a
    real socket is the same answer with ``protocol_answers`` on and off, and is counted."""
    answers: dict[bool, list[httpx.Response]] = {}
    for on in (True, False):
        settings = tmp_path / f"{on}" / "settings.toml"
        settings.parent.mkdir()
        settings.write_text(
            "[default]\n"
            'plugins = ["health", "metrics", "db", "cache", "products"]\n'
            f"[default.server]\nprotocol_answers = {str(on).lower()}\naccess_log = true\n"
            f'[default.db]\nurl = "sqlite+aiosqlite:///{settings.parent / "app.db"}"\n'
            '[default.cache]\nbackend = "memory"\n'
        )
        proc, base = serve_process(settings, dict(os.environ))
        try:
            wait_ready(proc, f"{base}/health/live", limit=30)
            product = {"sku": "W-1", "name": "Mug", "category": "kitchen", "price": "10.00", "stock": 5}
            created = httpx.post(f"{base}/products", json=product, timeout=10).json()
            with httpx.Client(timeout=10) as client:
                answers[on] = [client.get(f"{base}/products/{created['id']}") for _ in range(3)]
                scraped = client.get(f"{base}/metrics").text
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        assert [r.headers["x-cache"] for r in answers[on]] == ["MISS", "HIT", "HIT"]
        assert len({r.content for r in answers[on]}) == 1
        line = re.compile(r'^http_requests_total\{method="GET",route="/products/\{[a-z_]+\}",(.*)\} (\S+)$', re.M)
        counted = [value for _, value in line.findall(scraped)]
        assert sum(float(v) for v in counted) == 3
        assert out.count(f'"GET /products/{created["id"]} HTTP/1.1" 200') == 3
    hits = {on: answers[on][2] for on in answers}
    drop = {"date", "server-timing", "age", "etag"}  # the two products differ in created_at
    assert [(k, v) for k, v in hits[True].headers.items() if k not in drop] == [
        (k, v) for k, v in hits[False].headers.items() if k not in drop
    ]


class Unframed:
    """An app whose ``answer_now`` leaves out Content-Length."""

    def answer_now(self, scope: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, [(b"content-type", b"text/plain")], b"hello"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise AssertionError("answered in the protocol")


async def test_an_answer_without_a_length_is_framed_for_keep_alive() -> None:
    fast = Connection(protocol(Unframed(), {}))  # type: ignore[arg-type]
    assert fast.send(get("/x")).endswith(b"content-type: text/plain\r\ncontent-length: 5\r\n\r\nhello")
    head = fast.send(get("/x", method="HEAD"))
    assert head.endswith(b"content-type: text/plain\r\n\r\n")  # HEAD: no length invented
