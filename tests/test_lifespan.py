"""Plugin ordering, the composed lifespan, services and build-time hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from fastplug.config.errors import FastplugError
from fastplug.core import MiddlewareSpec, PluginInfo, hookimpl, service
from fastplug.core.lifespan import PluginStartupError
from tests.probes import Probe

Make = Callable[..., FastAPI]


def test_start_in_dependency_order_stop_in_reverse(fastplug_app_factory: Make, events: list[str]) -> None:
    probes = {
        "c": Probe("c", events, requires=("a",)),
        "a": Probe("a", events),
        "b": Probe("b", events, after=("c", "not_enabled")),
    }
    app = fastplug_app_factory(plugins=["health", "b", "c", "a"], extra_plugins=probes)
    assert app.state.fastplug.plugins.names == ["health", "a", "c", "b"]
    with TestClient(app):
        assert events == ["start:a", "start:c", "start:b"]
    assert events == ["start:a", "start:c", "start:b", "stop:b", "stop:c", "stop:a"]


def test_failed_start_rolls_back_started_plugins_in_reverse(fastplug_app_factory: Make, events: list[str]) -> None:
    probes = {n: Probe(n, events, fail_start=(n == "c")) for n in "abcd"}
    app = fastplug_app_factory(plugins=["a", "b", "c", "d"], extra_plugins=probes)
    with pytest.raises(PluginStartupError) as caught, TestClient(app):
        pass
    assert str(caught.value) == "plugin 'c' failed to start: RuntimeError: c cannot start"
    assert events == ["start:a", "start:b", "start:c", "stop:b", "stop:a"]
    assert app.state.fastplug.startup_error == str(caught.value)


def test_start_timeout_names_plugin_and_rolls_back(fastplug_app_factory: Make, events: list[str]) -> None:
    probes = {"a": Probe("a", events), "slow": Probe("slow", events, hang_start=True)}
    app = fastplug_app_factory(plugins=["a", "slow"], extra_plugins=probes, lifespan={"timeouts": {"slow": 0.2}})
    expected = r"^plugin 'slow' failed to start: timed out after 0\.2s$"
    with pytest.raises(PluginStartupError, match=expected), TestClient(app):
        pass
    assert events == ["start:a", "start:slow", "stop:a"]


def test_failing_shutdown_does_not_skip_the_others(
    fastplug_app_factory: Make, events: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    probes = {n: Probe(n, events, fail_stop=(n == "b")) for n in "abc"}
    app = fastplug_app_factory(plugins=["a", "b", "c"], extra_plugins=probes)
    with TestClient(app):
        pass
    assert events[3:] == ["stop:c", "stop:b", "stop:a"]
    assert "plugin 'b' failed to shut down: RuntimeError: b cannot stop" in caplog.text


Answer = service("b.answer", int)
Missing = service("nobody.provides", int)
services_router = APIRouter()


@services_router.get("/answer")
async def answer(value: Answer) -> dict[str, int]:
    """Reads a service another plugin's lifespan yielded."""
    return {"answer": value}


@services_router.get("/missing")
async def missing(value: Missing) -> dict[str, int]:
    """Asks for a service nobody provides: 503."""
    return {"value": value}


class WithRoutes(Probe):
    """A probe that also serves ``services_router``."""

    @hookimpl
    def register_routers(self) -> list[APIRouter]:
        return [services_router]


def test_services_flow_to_later_plugins_and_typed_dependencies(fastplug_app_factory: Make, events: list[str]) -> None:
    probes = {
        "a": Probe("a", events, yields=lambda services: {"a.base": 41}),
        "b": WithRoutes("b", events, requires=("a",), yields=lambda services: {"b.answer": services["a.base"] + 1}),
    }
    app = fastplug_app_factory(plugins=["b", "a"], extra_plugins=probes)
    with TestClient(app) as client:
        assert client.get("/answer").json() == {"answer": 42}
        response = client.get("/missing")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert app.state.fastplug.services.require("b.answer", int) == 42


def _header_middleware(name: str) -> Callable[[ASGIApp], ASGIApp]:
    def factory(app: ASGIApp, value: str = name) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            async def send_with_header(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message.setdefault("headers", []).append((b"x-order", value.encode()))
                await send(message)

            await app(scope, receive, send_with_header if scope["type"] == "http" else send)

        return middleware

    return factory


class MiddlewarePlugin:
    """Contributes three middleware with different priorities."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="mw")

    @hookimpl
    def register_middleware(self) -> list[MiddlewareSpec]:
        return [
            MiddlewareSpec("inner", _header_middleware("inner"), priority=300),
            MiddlewareSpec("outer", _header_middleware("outer"), priority=100),
            MiddlewareSpec("middle", _header_middleware("middle"), {"value": "middle!"}, priority=200),
        ]


def test_middleware_built_once_outermost_first(fastplug_app_factory: Make) -> None:
    app = fastplug_app_factory(plugins=["health", "mw"], extra_plugins={"mw": MiddlewarePlugin()})
    assert [name for _, spec in app.state.fastplug.middleware for name in [spec.name]] == ["outer", "middle", "inner"]
    with TestClient(app) as client:
        # headers are appended on the way out: innermost first
        assert client.get("/health/live").headers.get_list("x-order") == ["inner", "middle!", "outer"]


def test_middleware_order_setting_overrides_priority(fastplug_app_factory: Make) -> None:
    app = fastplug_app_factory(
        plugins=["health", "mw"], extra_plugins={"mw": MiddlewarePlugin()}, middleware={"order": ["inner"]}
    )
    assert [spec.name for _, spec in app.state.fastplug.middleware] == ["inner", "outer", "middle"]


def test_unknown_middleware_in_order_is_an_error(fastplug_app_factory: Make) -> None:
    with pytest.raises(FastplugError, match=r"\[middleware\] order: unknown middleware 'nope'"):
        fastplug_app_factory(plugins=["mw"], extra_plugins={"mw": MiddlewarePlugin()}, middleware={"order": ["nope"]})


class TeapotError(Exception):
    """Raised by a route; the plugin's handler turns it into a 418."""


class HandlerPlugin:
    """Contributes an exception handler, a router and an app_created hook."""

    def __init__(self) -> None:
        self.created: list[FastAPI] = []

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="teapot")

    @hookimpl
    def register_exception_handlers(self) -> dict[type[Exception], Any]:
        async def handle(request: Any, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": "short and stout"}, status_code=418)

        return {TeapotError: handle}

    @hookimpl
    def register_routers(self) -> list[APIRouter]:
        router = APIRouter()

        @router.get("/brew")
        async def brew() -> None:
            raise TeapotError

        return [router]

    @hookimpl
    def app_created(self, app: FastAPI) -> None:
        self.created.append(app)


def test_exception_handlers_routes_and_app_created(fastplug_app_factory: Make) -> None:
    plugin = HandlerPlugin()
    app = fastplug_app_factory(plugins=["teapot"], extra_plugins={"teapot": plugin})
    assert plugin.created == [app]
    assert [p for p, _ in app.state.fastplug.routes] == ["teapot"]
    with TestClient(app) as client:
        response = client.get("/brew")
    assert (response.status_code, response.json()) == (418, {"detail": "short and stout"})


def test_hook_that_raises_at_build_names_plugin(fastplug_app_factory: Make) -> None:
    class Broken:
        @hookimpl
        def plugin_info(self) -> PluginInfo:
            return PluginInfo(name="broken")

        @hookimpl
        def register_routers(self) -> list[APIRouter]:
            raise ValueError("no routers today")

    with pytest.raises(FastplugError) as caught:
        fastplug_app_factory(plugins=["broken"], extra_plugins={"broken": Broken()})
    assert str(caught.value) == "plugin 'broken': hook register_routers failed: ValueError: no routers today"
