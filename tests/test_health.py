"""The health plugin: liveness, and readiness from every plugin's checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastplug.core import HealthCheck, PluginInfo, hookimpl
from fastplug.core.services import Services

Make = Callable[..., FastAPI]


class Checks:
    """A plugin contributing the given health checks."""

    def __init__(self, name: str, *checks: HealthCheck) -> None:
        self.name, self.checks = name, list(checks)

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name=self.name)

    @hookimpl
    def register_health_checks(self) -> list[HealthCheck]:
        return self.checks


async def ok(services: Services) -> dict[str, int]:
    return {"connections": 3}


async def broken(services: Services) -> None:
    raise ConnectionRefusedError("connection refused")


async def hangs(services: Services) -> None:
    await asyncio.sleep(30)


def test_live_is_200_without_running_checks(fastplug_app_factory: Make) -> None:
    app = fastplug_app_factory(plugins=["health", "x"], extra_plugins={"x": Checks("x", HealthCheck("x", broken))})
    with TestClient(app) as client:
        response = client.get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["content-type"] == "application/json"


def test_ready_is_200_with_per_check_json(fastplug_app_factory: Make) -> None:
    plugins = {"pg": Checks("pg", HealthCheck("pg", ok)), "kv": Checks("kv", HealthCheck("ping", ok))}
    app = fastplug_app_factory(plugins=["health", "pg", "kv"], extra_plugins=plugins)
    with TestClient(app) as client:
        response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"pg", "kv.ping"}
    assert body["checks"]["pg"]["detail"] == {"connections": 3}
    assert "failed" not in body


def test_ready_is_503_naming_failed_and_timed_out_checks(fastplug_app_factory: Make) -> None:
    plugins = {
        "pg": Checks("pg", HealthCheck("pg", broken)),
        "kv": Checks("kv", HealthCheck("kv", hangs, timeout=0.1)),
        "web": Checks("web", HealthCheck("web", ok)),
    }
    app = fastplug_app_factory(plugins=["health", "pg", "kv", "web"], extra_plugins=plugins)
    with TestClient(app) as client:
        response = client.get("/health/ready")
        assert client.get("/health/live").status_code == 200
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["failed"] == ["pg", "kv"]
    assert body["checks"]["pg"]["error"] == "ConnectionRefusedError: connection refused"
    assert body["checks"]["kv"]["error"] == "timed out after 0.1s"
    assert body["checks"]["web"]["status"] == "ok"


def test_checks_run_concurrently(fastplug_app_factory: Make) -> None:
    # "first" can only pass if "second" runs while it waits: sequential checks would time out.
    gate: dict[str, asyncio.Event] = {}

    async def first(services: Services) -> str:
        gate.setdefault("a", asyncio.Event()).set()
        await gate.setdefault("b", asyncio.Event()).wait()
        return "released"

    async def second(services: Services) -> str:
        await gate.setdefault("a", asyncio.Event()).wait()
        gate.setdefault("b", asyncio.Event()).set()
        return "released the other"

    plugin = Checks("pair", HealthCheck("first", first, timeout=5), HealthCheck("second", second, timeout=5))
    app = fastplug_app_factory(plugins=["health", "pair"], extra_plugins={"pair": plugin})
    with TestClient(app) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200, response.json()


def test_health_prefix_and_default_timeout_are_settings(fastplug_app_factory: Make) -> None:
    plugin = Checks("slow", HealthCheck("slow", hangs))
    app = fastplug_app_factory(
        plugins=["health", "slow"], extra_plugins={"slow": plugin}, health={"prefix": "/hc", "timeout": 0.05}
    )
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 404
        response = client.get("/hc/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["slow"]["error"] == "timed out after 0.05s"
