"""``[server] max_body_size`` through core's gate: requests with a body are limited as
FastAPI limits them, requests without one skip the limiter, and a route's own limit wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient

from fastplug.core.bodylimit import has_body
from fastplug.core.markers import hookimpl
from fastplug.core.specs import PluginInfo

Make = Callable[..., FastAPI]
LIMIT = 1000


class Uploads:
    """A plugin with a route that reads its body and one that allows more."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="uploads")

    @hookimpl
    def register_routers(self) -> Sequence[APIRouter]:
        router = APIRouter()

        @router.post("/echo-size")
        async def size(request: Request) -> dict[str, int]:
            return {"size": len(await request.body())}

        @router.post("/upload", max_body_size=100_000)
        async def upload(request: Request) -> dict[str, int]:
            return {"size": len(await request.body())}

        @router.get("/plain")
        async def plain(request: Request) -> dict[str, int]:
            return {"size": len(await request.body())}

        return [router]


def _client(make: Make) -> TestClient:
    app = make(extra_plugins={"uploads": Uploads()}, plugins=["uploads"], server={"max_body_size": LIMIT})
    return TestClient(app)


def test_bodies_over_the_limit_are_413_and_within_it_pass(fastplug_app_factory: Make) -> None:
    with _client(fastplug_app_factory) as client:
        assert client.post("/echo-size", content=b"x" * LIMIT).json() == {"size": LIMIT}
        assert client.post("/echo-size", content=b"x" * (LIMIT + 1)).status_code == 413

        def chunks():  # no Content-Length: chunked
            for _ in range(5):
                yield b"x" * 400

        assert client.post("/echo-size", content=chunks()).status_code == 413


def test_a_routes_own_limit_replaces_the_apps(fastplug_app_factory: Make) -> None:
    with _client(fastplug_app_factory) as client:
        assert client.post("/upload", content=b"x" * 50_000).json() == {"size": 50_000}
        assert client.post("/upload", content=b"x" * 100_001).status_code == 413
        assert client.post("/echo-size", content=b"x" * 50_000).status_code == 413


def test_a_request_without_a_body_reads_an_empty_body(fastplug_app_factory: Make) -> None:
    with _client(fastplug_app_factory) as client:
        assert client.get("/plain").json() == {"size": 0}
        assert client.post("/echo-size", headers={"content-length": "0"}).json() == {"size": 0}


def _scope(version: str, *headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "http_version": version, "headers": list(headers)}


def test_only_http1_framing_without_a_body_skips_the_limiter() -> None:
    assert not has_body(_scope("1.1", (b"host", b"x")))
    assert not has_body(_scope("1.1", (b"content-length", b"0")))
    assert not has_body(_scope("1.0"))
    assert has_body(_scope("1.1", (b"content-length", b"12")))
    assert has_body(_scope("1.1", (b"transfer-encoding", b"chunked")))
    assert has_body(_scope("2", (b"host", b"x")))  # HTTP/2 frames a body without either header
