"""The compression plugin: gzip/brotli negotiation, what it must never touch, streaming."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.testclient import TestClient

from fastplug.config.errors import FastplugError
from fastplug.core import PluginInfo, hookimpl, negotiate, parse_accept_encoding
from fastplug.core.testing import LiveServer

Make = Callable[..., FastAPI]
BIG = json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(200)]).encode()
SMALL = b'{"status":"ok"}'
GATE = threading.Event()  # released by a streaming test once it saw the first piece

router = APIRouter()


@router.api_route("/big", methods=["GET", "HEAD"])
async def big() -> Response:
    return Response(BIG, media_type="application/json")


@router.get("/small")
async def small() -> Response:
    return Response(SMALL, media_type="application/json")


@router.get("/sized/{size}")
async def sized(size: int) -> Response:
    """``size`` bytes of JSON-ish text, with its Content-Length."""
    return Response(b"[" + b"1" * (size - 2) + b"]", media_type="application/json")


@router.get("/custom")
async def custom(request: Request) -> Response:
    """Headers and status from the query: ``?h=name:value&status=206&type=image/png``."""
    headers = dict(item.split(":", 1) for item in request.query_params.getlist("h"))
    media_type = request.query_params.get("type", "application/json")
    return Response(BIG, int(request.query_params.get("status", 200)), headers, media_type)


async def _gated(first: bytes, last: bytes) -> AsyncIterator[bytes]:
    yield first
    for _ in range(1000):  # at most 10 s, then finish anyway (the test will have failed)
        if GATE.is_set():
            break
        await asyncio.sleep(0.01)
    yield last


@router.get("/events")
async def events() -> StreamingResponse:
    return StreamingResponse(_gated(b"data: first\n\n" * 100, b"data: last\n\n"), media_type="text/event-stream")


@router.get("/stream")
async def stream() -> StreamingResponse:
    return StreamingResponse(_gated(b"first line\n" * 200, b"last line\n"), media_type="text/plain")


class Routes:
    """A plugin serving the routes above."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="routes")

    @hookimpl
    def register_routers(self) -> list[APIRouter]:
        return [router]


@pytest.fixture
def make(fastplug_app_factory: Make) -> Make:
    def build(**compression: Any) -> FastAPI:
        return fastplug_app_factory(
            plugins=["health", "compression", "routes"], extra_plugins={"routes": Routes()}, compression=compression
        )

    return build


@pytest.fixture
def client(make: Make) -> TestClient:
    return TestClient(make())


def raw_get(client: TestClient, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body exactly as sent (not decoded by httpx)."""
    with client.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def test_gzip_round_trip_with_vary_and_length(client: TestClient) -> None:
    response, raw = raw_get(client, "/big", **{"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(raw) < len(BIG)
    assert gzip.decompress(raw) == BIG


@pytest.mark.parametrize("engine", ["zlib", "isal"])
def test_gzip_is_made_by_the_engine_asked_for(make: Make, engine: str) -> None:
    if engine == "isal":
        pytest.importorskip("isal", reason="the isal package is not installed")
    from fastplug.plugins.compression.middleware import deflate_module

    app = make(gzip_engine=engine, gzip_level=4, isal_level=1)
    response, raw = raw_get(TestClient(app), "/big", **{"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == BIG
    assert raw == deflate_module(engine).compress(BIG, 4 if engine == "zlib" else 1, wbits=31)
    GATE.set()  # the stream's pieces without its wait (the streaming tests below hold it)
    try:
        response, raw = raw_get(TestClient(app), "/stream", **{"accept-encoding": "gzip"})
    finally:
        GATE.clear()
    assert gzip.decompress(raw) == b"first line\n" * 200 + b"last line\n"


def test_auto_engine_is_isal_when_installed(make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastplug.plugins.compression import middleware

    installed = middleware.isal_available()
    _, raw = raw_get(TestClient(make()), "/big", **{"accept-encoding": "gzip"})
    assert raw == middleware.deflate_module("isal" if installed else "zlib").compress(
        BIG, 2 if installed else 5, wbits=31
    )
    monkeypatch.setattr(middleware, "isal_available", lambda: False)
    _, raw = raw_get(TestClient(make()), "/big", **{"accept-encoding": "gzip"})
    assert raw == zlib.compress(BIG, 5, wbits=31)
    with pytest.raises(FastplugError, match=r"gzip_engine = \"isal\" needs the isal package"):
        make(gzip_engine="isal")


def test_brotli_when_installed_and_accepted(make: Make) -> None:
    brotli = pytest.importorskip("brotli", reason="the brotli package is not installed")
    response, raw = raw_get(TestClient(make()), "/big", **{"accept-encoding": "gzip, br"})
    assert response.headers["content-encoding"] == "br"
    assert brotli.decompress(raw) == BIG
    response, raw = raw_get(TestClient(make(brotli=False)), "/big", **{"accept-encoding": "gzip, br"})
    assert response.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip;q=0", None),
        ("gzip;q=0, br;q=0", None),
        ("*;q=0", None),
        ("identity", None),
        ("br;q=0, gzip", "gzip"),
        ("GZIP;Q=0.5", "gzip"),
        ("x-gzip", "gzip"),
        ("*", "br"),
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("gzip;q=bogus", None),
    ],
)
def test_negotiation_honours_q_values(accept: str, expected: str | None) -> None:
    assert negotiate(accept, ("br", "gzip")) == expected


def test_parse_accept_encoding() -> None:
    assert parse_accept_encoding("gzip;q=0.5 , br, ,deflate;q=2") == {"gzip": 0.5, "br": 1.0, "deflate": 1.0}


def test_refused_coding_is_not_used_but_vary_is_set(client: TestClient) -> None:
    response, raw = raw_get(client, "/big", **{"accept-encoding": "gzip;q=0"})
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert raw == BIG


def test_vary_is_set_even_without_accept_encoding(client: TestClient) -> None:
    response, raw = raw_get(client, "/big", **{"accept-encoding": ""})
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert raw == BIG


def test_vary_is_merged_with_the_apps_own(client: TestClient) -> None:
    response, _ = raw_get(client, "/custom?h=vary:Origin", **{"accept-encoding": "gzip"})
    assert response.headers["vary"] == "Origin, Accept-Encoding"
    response, _ = raw_get(client, "/custom?h=vary:accept-encoding", **{"accept-encoding": "gzip"})
    assert response.headers["vary"] == "accept-encoding"


def test_small_bodies_are_untouched(client: TestClient) -> None:
    response, raw = raw_get(client, "/small", **{"accept-encoding": "gzip"})
    assert raw == SMALL
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers


def test_minimum_size_is_a_setting(make: Make) -> None:
    response, raw = raw_get(TestClient(make(minimum_size=10)), "/small", **{"accept-encoding": "gzip"})
    # compressing 15 bytes makes them bigger: sent as they are, but the answer could vary
    assert raw == SMALL and "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"


@pytest.mark.parametrize(
    ("minimum", "size", "compressed"),
    [(1000, 999, False), (1000, 1000, True), (1000, 99, False), (0, 200, True), (100, 100, True), (100, 99, False)],
)
def test_minimum_size_boundary(make: Make, minimum: int, size: int, compressed: bool) -> None:
    response, raw = raw_get(TestClient(make(minimum_size=minimum)), f"/sized/{size}", **{"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert (response.headers.get("content-encoding") == "gzip") is compressed
    body = gzip.decompress(raw) if compressed else raw
    assert len(body) == size


def test_strong_etag_is_weakened_weak_one_kept(client: TestClient) -> None:
    response, _ = raw_get(client, '/custom?h=etag:"v1"', **{"accept-encoding": "gzip"})
    assert response.headers["etag"] == 'W/"v1"'
    response, _ = raw_get(client, '/custom?h=etag:W/"v1"', **{"accept-encoding": "gzip"})
    assert response.headers["etag"] == 'W/"v1"'
    response, _ = raw_get(client, '/custom?h=etag:"v1"', **{"accept-encoding": "identity"})
    assert response.headers["etag"] == '"v1"'


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/custom?h=content-encoding:gzip", {}),  # already encoded
        ("/custom?status=206&h=content-range:bytes 0-99/5000", {}),  # a partial response
        ("/big", {"range": "bytes=0-99"}),  # a range request
        ("/custom?type=image/png", {}),  # not in content_types
        ("/custom?h=cache-control:no-transform", {}),
    ],
)
def test_never_touched(client: TestClient, path: str, headers: dict[str, str]) -> None:
    response, raw = raw_get(client, path, **{"accept-encoding": "gzip", **headers})
    assert raw == BIG
    assert response.headers.get("content-encoding") in (None, "gzip")  # gzip: the app's own header
    assert "vary" not in response.headers


def test_head_is_untouched(client: TestClient) -> None:
    response = client.head("/big", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(BIG))


def test_content_types_and_exclude_paths_are_settings(make: Make) -> None:
    client = TestClient(make(content_types=["image/*"], exclude_paths=["/bi"]))
    response, _ = raw_get(client, "/custom?type=image/png", **{"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    response, _ = raw_get(client, "/custom", **{"accept-encoding": "gzip"})  # application/json: not listed
    assert "content-encoding" not in response.headers
    response, raw = raw_get(client, "/big", **{"accept-encoding": "gzip"})  # excluded by prefix
    assert "content-encoding" not in response.headers and raw == BIG


def test_event_stream_is_never_compressed_or_buffered(make: Make) -> None:
    app = make(content_types=["text/*"])  # even when text/* is allowed
    GATE.clear()
    with (
        LiveServer(app) as server,
        httpx.Client(timeout=10) as http,
        http.stream("GET", server.url + "/events", headers={"accept-encoding": "gzip"}) as response,
    ):
        assert "content-encoding" not in response.headers
        chunks = response.iter_raw()
        first = next(chunks)
        assert first.startswith(b"data: first")
        assert not GATE.is_set()  # the first event arrived while the stream is still open
        GATE.set()
        rest = b"".join(chunks)
    assert (first + rest).endswith(b"data: last\n\n")


def test_streams_are_compressed_chunk_by_chunk(make: Make) -> None:
    GATE.clear()
    with (
        LiveServer(make()) as server,
        httpx.Client(timeout=10) as http,
        http.stream("GET", server.url + "/stream", headers={"accept-encoding": "gzip"}) as response,
    ):
        assert response.headers["content-encoding"] == "gzip"
        assert "content-length" not in response.headers
        decoder, seen = zlib.decompressobj(31), b""
        chunks = response.iter_raw()
        while b"first line\n" * 200 not in seen:  # decodable before the stream ends
            seen += decoder.decompress(next(chunks))
        assert not GATE.is_set()
        GATE.set()
        for chunk in chunks:
            seen += decoder.decompress(chunk)
    assert decoder.eof
    assert seen == b"first line\n" * 200 + b"last line\n"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"content_types": ["json"]}, 'expected media types like "application/json"'),
        ({"gzip_level": 0}, "gzip_level"),
        ({"exclude_paths": ["static"]}, 'expected paths starting with "/"'),
        ({"level": 5}, "level"),
    ],
)
def test_bad_settings_are_errors(make: Make, section: dict[str, Any], message: str) -> None:
    with pytest.raises(FastplugError, match=message):
        make(**section)


def test_disabled_plugin_imports_nothing(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[default]\nplugins = ["health"]\n')
    code = (
        "import sys; from fastplug.core.app import create_app; create_app(sys.argv[1]); "
        "print(sorted(m for m in sys.modules"
        " if m.startswith('fastplug.plugins.compression') or m in ('brotli', 'isal')))"
    )
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", code, str(settings)], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
