"""The http plugin: one pooled httpx client per process, reused, closed at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pool_probe
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from fastplug.core.runtime import Runtime
from fastplug.core.testing import LiveServer
from tests.conftest import free_port

Make = Callable[..., FastAPI]


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[tuple[str, int]], list[dict[str, str]]]]:
    """A real HTTP server recording each request's client address and headers."""
    peers: list[tuple[str, int]] = []
    headers: list[dict[str, str]] = []
    app = FastAPI()

    busy = [False]

    @app.get("/slow")
    async def slow() -> dict[str, int]:
        busy[0] = True
        await asyncio.sleep(1)
        busy[0] = False
        return {"n": 0}

    @app.get("/busy")
    async def is_busy() -> bool:
        return busy[0]

    @app.get("/echo")
    async def echo(request: Request) -> dict[str, int]:
        assert request.client is not None
        peers.append((request.client.host, request.client.port))
        headers.append(dict(request.headers))
        return {"n": len(peers)}

    with LiveServer(app) as server:
        yield server.url, peers, headers


@pytest.fixture
def make(fastplug_app_factory: Make) -> Make:
    def build(**http: object) -> FastAPI:
        return fastplug_app_factory(plugins=["health", "http", "probe"], extra_plugins={"probe": pool_probe}, http=http)

    return build


def test_client_is_shared_and_connections_are_reused(make: Make, upstream: tuple) -> None:
    url, peers, headers = upstream
    app = make(headers={"x-team": "fastplug"})
    with TestClient(app) as client:
        answers = [client.get("/upstream", params={"url": f"{url}/echo"}).json() for _ in range(20)]
        shared = Runtime.of(app).services["http.client"]
    assert {a["client"] for a in answers} == {id(shared)}
    assert [a["upstream"]["n"] for a in answers] == list(range(1, 21))
    assert len(set(peers)) == 1  # one keep-alive connection served all twenty requests
    assert headers[0]["x-team"] == "fastplug"
    assert headers[0]["user-agent"].startswith("fastplug/")
    assert shared.is_closed


def test_upstream_down_is_503(make: Make) -> None:
    port = free_port()
    with TestClient(make(retries=0)) as client:
        response = client.get("/upstream", params={"url": f"http://127.0.0.1:{port}/"})
    assert response.status_code == 503


def test_limits_and_timeouts_come_from_settings(make: Make, upstream: tuple) -> None:
    url, _, _ = upstream
    app = make(max_connections=1, timeout={"pool": 0.2, "read": 5})
    with LiveServer(app) as server, ThreadPoolExecutor(2) as pool:
        slow = pool.submit(httpx.get, f"{server.url}/upstream", params={"url": f"{url}/slow"}, timeout=10)
        for _ in range(500):  # until the slow request holds the only connection
            if httpx.get(f"{url}/busy").json():
                break
        blocked = httpx.get(f"{server.url}/upstream", params={"url": f"{url}/echo"}, timeout=10)
        assert slow.result().status_code == 200
        assert Runtime.of(app).services["http.client"].timeout.read == 5
    assert blocked.status_code == 503  # no free connection within timeout.pool
