"""The redis plugin against the real Redis of this machine and private redis-servers."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator

import pool_probe
import pytest
import redis as redis_sync
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastplug.core.runtime import Runtime
from fastplug.core.testing import require_service
from tests.conftest import free_port

Make = Callable[..., FastAPI]
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def make(fastplug_app_factory: Make) -> Make:
    def build(**redis: object) -> FastAPI:
        return fastplug_app_factory(
            plugins=["health", "redis", "probe"], extra_plugins={"probe": pool_probe}, redis=redis
        )

    return build


@pytest.fixture
def shared_redis() -> Iterator[redis_sync.Redis]:
    require_service("Redis", "127.0.0.1", 6379)
    client = redis_sync.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def key(shared_redis: redis_sync.Redis) -> Iterator[str]:
    name = f"fastplug-test:{uuid.uuid4().hex}"
    yield name
    shared_redis.delete(name)


def connections_named(client: redis_sync.Redis, name: str) -> int:
    return sum(1 for entry in client.client_list() if entry.get("name") == name)


def test_one_shared_client_used_by_requests_and_closed_at_shutdown(
    make: Make, shared_redis: redis_sync.Redis, key: str
) -> None:
    name = f"fp-{uuid.uuid4().hex[:8]}"
    app = make(url=REDIS_URL, client_name=name)
    with TestClient(app) as client:
        ids = {client.post(f"/kv/{key}", params={"value": str(i)}).json()["client"] for i in range(5)}
        assert client.get(f"/kv/{key}").json() == {"value": "4"}
        assert ids == {id(Runtime.of(app).services["redis.client"])}
        ready = client.get("/health/ready").json()
        assert ready["checks"]["redis"] == ready["checks"]["redis"] | {"status": "ok"}
        assert connections_named(shared_redis, name) >= 1
    assert connections_named(shared_redis, name) == 0


def test_without_url_no_redis_is_used(make: Make) -> None:
    with TestClient(make(), client=("127.0.0.1", 50000)) as client:  # loopback: shown the health details
        ready = client.get("/health/ready").json()
        route = client.get("/kv/x")
    assert ready["status"] == "ok"
    assert ready["checks"]["redis"]["detail"] == "not configured ([redis] url unset)"
    assert route.status_code == 503


def test_redis_down_gives_503_and_ready_names_it(make: Make) -> None:
    """Redis is not critical by default (readiness degraded, 200); the route needing it is 503."""
    app = make(url=f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    with TestClient(app) as client:
        route = client.get("/kv/x")
        live = client.get("/health/live")
        ready = client.get("/health/ready")
    assert route.status_code == 503 and route.headers["retry-after"] == "1"
    assert live.status_code == 200
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["failed"] == ready.json()["degraded"] == ["redis"]


def test_killed_redis_gives_503_then_recovers_when_back(
    make: Make, private_redis: Callable[[], subprocess.Popen[bytes]]
) -> None:
    server = private_redis()
    port = private_redis.port  # type: ignore[attr-defined]
    app = make(url=f"redis://127.0.0.1:{port}/0", socket_timeout=0.5, socket_connect_timeout=0.5)
    with TestClient(app) as client:
        assert client.post("/kv/k", params={"value": "v"}).status_code == 200
        server.kill()
        server.wait()
        down = client.get("/kv/k")
        private_redis()  # back on the same port (empty: it keeps nothing)
        up = client.get("/kv/k")
    assert down.status_code == 503
    assert up.status_code == 200 and up.json() == {"value": None}
