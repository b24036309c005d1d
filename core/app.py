"""The app factory: settings + plugins -> one FastAPI app, built once."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fastplug.config.errors import FastplugError, Problem
from fastplug.config.models import ServerSettings
from fastplug.config.settings import Settings
from fastplug.core.allow import allow_table, method_not_allowed
from fastplug.core.bodylimit import BodyLimit
from fastplug.core.bootstrap import load
from fastplug.core.hookresults import middleware_options_problem
from fastplug.core.lifespan import compose_lifespan
from fastplug.core.manager import PluginHookError, PluginResultError, Plugins, one_line
from fastplug.core.route_index import index_routes
from fastplug.core.routes import add_router
from fastplug.core.runtime import Runtime
from fastplug.core.services import ServiceMissing
from fastplug.core.specs import Answer, MiddlewareSpec
from fastplug.core.validation import invalid_request

log = logging.getLogger("fastplug")


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 + ``Retry-After: 1`` for a dependency that is missing, down or too slow."""
    log.warning("503 on %s %s: %s", request.method, request.url.path, one_line(exc))
    return JSONResponse({"detail": "service unavailable"}, status_code=503, headers={"Retry-After": "1"})


# A dependency that is missing, refused or too slow: 503 + Retry-After, not a 500.
# Plugins may register more precise handlers for these.
DEFAULT_HANDLERS: dict[Any, Any] = {
    ServiceMissing: unavailable,
    ConnectionError: unavailable,
    TimeoutError: unavailable,
    RequestValidationError: invalid_request,  # short, JSON-safe excerpts: never a 500, never the whole body
}


def order_middleware(specs: list[tuple[str, MiddlewareSpec]], order: list[str]) -> list[tuple[str, MiddlewareSpec]]:
    """Outermost first: names listed in ``[middleware] order`` first, then by priority
    (lower is outer), then plugin start order."""
    rank = {name: i for i, name in enumerate(order)}
    indexed = list(enumerate(specs))
    indexed.sort(key=lambda p: (rank.get(p[1][1].name, len(rank)), p[1][1].priority, p[0]))
    return [spec for _, spec in indexed]


def _collect(runtime: Runtime) -> tuple[list[Middleware], dict[Any, Any]]:
    settings, plugins = runtime.settings, runtime.plugins
    problems: list[Problem] = []
    specs: list[tuple[str, MiddlewareSpec]] = []
    for plugin, result in plugins.call_each("register_middleware", problems, settings=settings):
        specs.extend((plugin, spec) for spec in result)
    problems.extend(p for p in (middleware_options_problem(plugin, spec) for plugin, spec in specs) if p)
    names = [spec.name for _, spec in specs]
    for dup in {n for n in names if names.count(n) > 1}:
        problems.append(Problem("fastplug.E040", f"two middleware are named '{dup}'"))
    for unknown in set(settings.core.middleware.order) - set(names):
        problems.append(
            Problem(
                "fastplug.E041",
                f"{settings.path.name} [middleware] order: unknown middleware '{unknown}'",
                f"known: {', '.join(names) or '(none)'}",
            )
        )
    runtime.middleware = order_middleware(specs, settings.core.middleware.order)

    handlers: dict[Any, Any] = dict(DEFAULT_HANDLERS)
    owner: dict[Any, str] = {}
    for plugin, result in plugins.call_each("register_exception_handlers", problems, settings=settings):
        for key, handler in dict(result).items():
            if key in owner:
                problems.append(
                    Problem(
                        "fastplug.E042",
                        f"plugins '{owner[key]}' and '{plugin}' both handle {getattr(key, '__name__', key)}",
                    )
                )
            owner[key] = plugin
            handlers[key] = handler

    for plugin, result in plugins.call_each("register_health_checks", problems, settings=settings):
        runtime.health_checks.extend((plugin, check) for check in result)
    if problems:
        raise FastplugError(problems)
    stack = [Middleware(spec.factory, **dict(spec.options)) for _, spec in runtime.middleware]
    return stack, handlers


class FastplugApp(FastAPI):
    """A FastAPI app that may run edge middleware in front of FastAPI's own entry.

    ``answer_now`` is the outermost edge middleware's (see :class:`MiddlewareSpec`), for
    fastplug's HTTP protocol: None when there is none.
    """

    edge_stack: ASGIApp | None = None
    answer_now: Callable[[Scope], Answer | None] | None = None
    direct: ASGIApp | None = None
    """Starlette's middleware stack, entered without FastAPI's telemetry check, while serving
    with no OpenTelemetry provider configured (see :meth:`serving_started`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self.edge_stack
        if edge is None:
            await self.enter(scope, receive, send)
        else:
            await edge(scope, receive, send)

    async def enter(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own entry (inside the edge middleware): ``FastAPI.__call__``, or what it
        does when its native telemetry is off: the root path, then Starlette's stack."""
        direct = self.direct
        if direct is None or scope["type"] == "lifespan":
            await FastAPI.__call__(self, scope, receive, send)
            return
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        await direct(scope, receive, send)

    def serving_started(self, serving: bool = True) -> None:
        """Every plugin has started (``serving``) or the app is stopping.

        FastAPI asks on every request whether an OpenTelemetry tracer, meter or logger
        provider is configured (a few microseconds: three environment lookups and the
        provider checks). Providers are configured before an app serves (at import, by
        ``opentelemetry-instrument``, or in a plugin's lifespan), so fastplug asks once here:
        with none, requests go straight to Starlette's stack; with one, through FastAPI's
        telemetry as before."""
        if not serving:
            self.direct = None
            return
        telemetry = getattr(getattr(self, "_native_telemetry", None), "enabled", None)
        self.direct = None if telemetry is not None and telemetry() else self.middleware_stack


def _edge_stack(app: FastplugApp, edge: list[tuple[str, MiddlewareSpec]]) -> ASGIApp | None:
    """The edge middleware (outermost first) around FastAPI's own ``__call__``."""
    if not edge:
        return None
    inner: ASGIApp = app.enter
    for _, spec in reversed(edge):
        inner = spec.factory(inner, **dict(spec.options))
    return inner


def _forwarded(app: FastplugApp, server: ServerSettings) -> None:
    """``[server] proxy_headers``: trusted proxies' ``X-Forwarded-*`` applied in front of
    everything, edge middleware included (:mod:`fastplug.core.forwarded`)."""
    if not server.proxy_headers:
        return
    from fastplug.core.forwarded import ForwardedMiddleware

    inner = app.edge_stack if app.edge_stack is not None else app.enter
    forwarded = ForwardedMiddleware(inner, server.forwarded_allow_ips, server.forwarded_host)
    app.edge_stack = forwarded
    app.answer_now = forwarded.answer_now if app.answer_now is not None else None


def build_app(settings: Settings, plugins: Plugins) -> FastAPI:
    """Build the app once: middleware, handlers, lifespan, routers, then ``app_created``.

    A plugin hook that raises, or returns what it must not, becomes a :class:`FastplugError`
    naming the plugin and the hook.
    """
    try:
        return _build(settings, plugins)
    except PluginResultError as exc:
        raise FastplugError([exc.problem]) from exc
    except PluginHookError as exc:
        raise FastplugError([Problem("fastplug.E023", str(exc))]) from exc


def _body_limit(max_body_size: int) -> list[Middleware]:
    """The outermost user middleware: ``[server] max_body_size`` (none when 0)."""
    return [Middleware(BodyLimit, max_body_size=max_body_size)] if max_body_size else []


def _build(settings: Settings, plugins: Plugins) -> FastAPI:
    runtime = Runtime(settings=settings, plugins=plugins)
    middleware, handlers = _collect(runtime)
    edge_count = next((i for i, (_, spec) in enumerate(runtime.middleware) if not spec.edge), len(middleware))
    app = FastplugApp(
        title=settings.core.title,
        debug=settings.core.debug,
        # the API's own description, for development; not something to publish by default
        openapi_url="/openapi.json" if settings.core.docs else None,
        docs_url="/docs" if settings.core.docs else None,
        redoc_url="/redoc" if settings.core.docs else None,
        # FastAPI's own limiter (413, memory bounded), only for requests that carry a body
        middleware=_body_limit(settings.core.server.max_body_size) + middleware[edge_count:],
        exception_handlers=handlers,
        lifespan=compose_lifespan(runtime),
    )
    app.state.fastplug = runtime
    app.edge_stack = _edge_stack(app, runtime.middleware[:edge_count])
    problems: list[Problem] = []
    for plugin, routers in plugins.call_each("register_routers", problems, settings=settings):
        for router in routers:
            runtime.routes.extend((plugin, route) for route in add_router(app, router))
    if problems:
        raise FastplugError(problems)
    plugins.call_each("app_created", app=app, settings=settings)
    app.answer_now = getattr(app.edge_stack, "answer_now", None)  # after app_created, which may rewrap it
    _forwarded(app, settings.core.server)
    index_routes(app)
    if 405 not in app.exception_handlers:  # a plugin's own 405 handler wins
        app.exception_handlers[405] = method_not_allowed(allow_table(app.router.routes))
    return app


def create_app(
    settings_path: str | os.PathLike[str] | None = None,
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    extra_plugins: Mapping[str, Any] | None = None,
) -> FastAPI:
    """Load ``settings.toml`` (or ``$FASTPLUG_SETTINGS``) and build the app.

    Raises :class:`~config.errors.FastplugError` listing every configuration problem.
    """
    settings, plugins = load(settings_path, env, overrides, extra_plugins)
    return build_app(settings, plugins)
