"""The health plugin: liveness, and readiness from every plugin's checks."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastplug.config.errors import FastplugError
from fastplug.core import HealthCheck, PluginInfo, Runtime, hookimpl
from fastplug.core.cli import cli
from fastplug.core.services import Services
from fastplug.plugins.health.routes import plan
from fastplug.plugins.health.settings import HealthSettings

Make = Callable[..., FastAPI]
OPERATOR = ("127.0.0.1", 50000)  # a loopback client: shown every check's error, detail and duration


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
    with TestClient(app, client=OPERATOR) as client:
        response = client.get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["content-type"] == "application/json"


def test_ready_is_200_with_per_check_json(fastplug_app_factory: Make) -> None:
    plugins = {"pg": Checks("pg", HealthCheck("pg", ok)), "kv": Checks("kv", HealthCheck("ping", ok))}
    app = fastplug_app_factory(plugins=["health", "pg", "kv"], extra_plugins=plugins)
    with TestClient(app, client=OPERATOR) as client:
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
    with TestClient(app, client=OPERATOR) as client:
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
    with TestClient(app, client=OPERATOR) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200, response.json()


def test_health_prefix_and_default_timeout_are_settings(fastplug_app_factory: Make) -> None:
    plugin = Checks("slow", HealthCheck("slow", hangs))
    app = fastplug_app_factory(
        plugins=["health", "slow"], extra_plugins={"slow": plugin}, health={"prefix": "/hc", "timeout": 0.05}
    )
    with TestClient(app, client=OPERATOR) as client:
        assert client.get("/health/live").status_code == 404
        response = client.get("/hc/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["slow"]["error"] == "timed out after 0.05s"


# --- critical and non-critical checks, the readiness budget ---------------------------


def test_a_failing_critical_check_is_503_with_retry_after(fastplug_app_factory: Make) -> None:
    plugins = {"pg": Checks("pg", HealthCheck("pg", broken)), "kv": Checks("kv", HealthCheck("kv", ok, critical=False))}
    app = fastplug_app_factory(plugins=["health", "pg", "kv"], extra_plugins=plugins)
    with TestClient(app, client=OPERATOR) as client:
        response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert (body["status"], body["failed"]) == ("fail", ["pg"])
    assert "degraded" not in body
    assert body["checks"]["pg"] | {"duration_ms": 0} == {
        "status": "fail",
        "critical": True,
        "error": "ConnectionRefusedError: connection refused",
        "duration_ms": 0,
    }
    assert body["checks"]["kv"]["critical"] is False


def test_a_failing_non_critical_check_is_200_degraded(fastplug_app_factory: Make) -> None:
    plugins = {
        "pg": Checks("pg", HealthCheck("pg", ok)),
        "kv": Checks("kv", HealthCheck("kv", broken, critical=False)),
        "mq": Checks("mq", HealthCheck("broker", hangs, critical=False)),
    }
    app = fastplug_app_factory(plugins=["health", "pg", "kv", "mq"], extra_plugins=plugins, health={"timeout": 0.2})
    with TestClient(app, client=OPERATOR) as client:
        response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200 and "retry-after" not in response.headers
    assert body["status"] == "degraded"
    assert body["failed"] == body["degraded"] == ["kv", "mq.broker"]
    assert body["checks"]["pg"]["status"] == "ok"
    assert body["checks"]["kv"]["error"] == "ConnectionRefusedError: connection refused"
    assert body["checks"]["mq.broker"]["error"] == "timed out after 0.2s"


def test_a_critical_failure_beside_non_critical_ones_lists_both(fastplug_app_factory: Make) -> None:
    plugins = {
        "pg": Checks("pg", HealthCheck("pg", broken)),
        "kv": Checks("kv", HealthCheck("kv", broken, critical=False)),
    }
    app = fastplug_app_factory(plugins=["health", "pg", "kv"], extra_plugins=plugins)
    with TestClient(app, client=OPERATOR) as client:
        response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 503
    assert (body["status"], body["failed"], body["degraded"]) == ("fail", ["pg", "kv"], ["kv"])


def test_settings_override_criticality_both_ways(fastplug_app_factory: Make) -> None:
    def make(critical: dict[str, bool]) -> FastAPI:
        plugins = {
            "pg": Checks("pg", HealthCheck("pg", broken)),
            "kv": Checks("kv", HealthCheck("ping", broken, critical=False)),
        }
        return fastplug_app_factory(
            plugins=["health", "pg", "kv"], extra_plugins=plugins, health={"critical": critical, "retry_after": 2}
        )

    with TestClient(make({"pg": False}), client=OPERATOR) as client:
        relaxed = client.get("/health/ready")
    with TestClient(make({"pg": False, "kv.ping": True}), client=OPERATOR) as client:
        strict = client.get("/health/ready")
    assert relaxed.status_code == 200
    assert relaxed.json()["degraded"] == ["pg", "kv.ping"]
    assert relaxed.json()["checks"]["pg"]["critical"] is False
    assert strict.status_code == 503 and strict.headers["retry-after"] == "2"
    assert (strict.json()["failed"], strict.json()["degraded"]) == (["pg", "kv.ping"], ["pg"])
    assert strict.json()["checks"]["kv.ping"]["critical"] is True


def test_an_unknown_name_in_critical_is_an_error_naming_it(
    fastplug_app_factory: Make, fastplug_settings_file: Path
) -> None:
    plugins = {"pg": Checks("pg", HealthCheck("pg", ok))}
    with pytest.raises(FastplugError) as info:
        fastplug_app_factory(plugins=["health", "pg"], extra_plugins=plugins, health={"critical": {"cahce": True}})
    assert "[health] critical: unknown health check 'cahce' (known: pg)" in str(info.value)

    fastplug_settings_file.write_text(
        '[default]\nplugins = ["health"]\n[default.health]\ncritical = { "tasks.broker" = false }\n'
    )
    result = CliRunner().invoke(cli, ["--settings", str(fastplug_settings_file), "check"])
    assert result.exit_code == 1
    assert "unknown health check 'tasks.broker' (known: (none))" in result.output


def test_each_check_is_cut_at_the_budget_even_if_its_cancellation_hangs(fastplug_app_factory: Make) -> None:
    async def stubborn(services: Services) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(30)  # a clean-up that hangs as well

    plugin = Checks("slow", HealthCheck("long", hangs, timeout=30), HealthCheck("stubborn", stubborn))
    app = fastplug_app_factory(plugins=["health", "slow"], extra_plugins={"slow": plugin}, health={"timeout": 0.3})
    with TestClient(app, client=OPERATOR) as client, ThreadPoolExecutor(1) as pool:
        response = pool.submit(client.get, "/health/ready").result(timeout=3 * 0.3)  # a hang fails here
    body = response.json()
    assert response.status_code == 503
    assert body["failed"] == ["slow.long", "slow.stubborn"]
    assert {body["checks"][n]["error"] for n in body["failed"]} == {"timed out after 0.3s"}


# --- the built-in plugins' checks on Redis ----------------------------------------------


def redis_cache_app(make: Make, port: int, **cache: Any) -> FastAPI:
    return make(
        plugins=["health", "redis", "cache"],
        redis={"url": f"redis://127.0.0.1:{port}/0"},
        cache={"backend": "redis", "key_prefix": f"fp-health-{port}", **cache},
    )


def test_default_criticality_of_the_built_in_checks(fastplug_app_factory: Make) -> None:
    def flags(**sections: Any) -> dict[str, bool]:
        app = fastplug_app_factory(**sections)
        return {p.name: p.critical for p in plan(Runtime.of(app).health_checks, HealthSettings())}

    redis = {"url": "redis://127.0.0.1:1/0"}  # nothing connects: the app is only built
    on_redis = {"plugins": ["health", "redis", "cache"], "redis": redis}
    assert flags(**on_redis, cache={"backend": "redis"}) == {"redis": False, "cache": False}
    assert flags(**on_redis, cache={"backend": "redis", "fail_open": False}) == {"redis": True, "cache": True}
    assert flags(plugins=["health", "db", "tasks"]) == {"db": True, "tasks": False}  # through the outbox
    assert flags(plugins=["health", "tasks"]) == {"tasks": True}  # published directly


@pytest.mark.parametrize("fail_open", [True, False])
def test_an_open_cache_circuit_fails_the_check_at_once(
    fastplug_app_factory: Make, private_redis: Callable[[], subprocess.Popen[bytes]], fail_open: bool
) -> None:
    private_redis()
    app = redis_cache_app(fastplug_app_factory, private_redis.port, fail_open=fail_open)  # type: ignore[attr-defined]
    with TestClient(app, client=OPERATOR) as client:
        before = client.get("/health/ready").json()
        Runtime.of(app).services["cache"].backend.open_until = time.monotonic() + 60  # as after Redis errors
        response = client.get("/health/ready")
    body = response.json()
    assert before["status"] == "ok" and before["checks"]["cache"]["detail"]["circuit"] == "closed"
    assert body["checks"]["redis"]["status"] == "ok"  # Redis answers: the breaker alone failed the check
    assert body["checks"]["cache"]["error"] == "BackendUnavailable: circuit open"
    assert body["failed"] == ["cache"]
    assert response.status_code == (200 if fail_open else 503)
    assert body["status"] == ("degraded" if fail_open else "fail")


def test_a_hung_redis_is_reported_timed_out_within_the_budget(
    fastplug_app_factory: Make, private_redis: Callable[[], subprocess.Popen[bytes]]
) -> None:
    server = private_redis()
    app = redis_cache_app(fastplug_app_factory, private_redis.port)  # type: ignore[attr-defined]
    budget = HealthSettings().timeout
    pool = ThreadPoolExecutor(1)
    with TestClient(app, client=OPERATOR) as client:
        assert client.get("/health/ready").json()["status"] == "ok"
        server.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
        try:
            response = pool.submit(client.get, "/health/ready").result(timeout=3 * budget)  # a hang fails here
        finally:
            server.send_signal(signal.SIGCONT)
            pool.shutdown()
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["failed"] == body["degraded"] == ["redis", "cache"]
    assert body["checks"]["redis"]["error"] == f"timed out after {budget:g}s"
    assert body["checks"]["cache"]["error"] == "BackendUnavailable: Redis timed out after 0.1s (op_timeout)"
