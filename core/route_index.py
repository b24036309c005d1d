"""Find a route by a dict lookup instead of trying every route before it.

Starlette and FastAPI match a request against the app's routes one by one, a regex per route,
so a route's cost grows with the number of routes declared before it (FastAPI's docs routes,
then every plugin's). :class:`IndexedRouter` keeps, for each ``(path, method)`` of a route
without path parameters, the route that the linear scan would pick first, computed once from
the route list, and goes straight to it. It then does exactly what FastAPI's router does with
a full match (the same scope updates, the same telemetry, ``route.handle``). A path with
parameters is tried only against the routes that can match it: those whose first path
segment is the path's, and those whose first segment is a parameter, in declaration order.
Everything else (no full match among those, mounts, hosts, included routers, 404/405,
slash redirects) takes FastAPI's scan, and both are rebuilt whenever the route list changes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRouter
from starlette._utils import get_route_path
from starlette.routing import Match, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

try:  # what FastAPI's router does with a full match (FastAPI >= 0.137)
    from fastapi.routing import _apply_router_form_limits, _route_selected, _update_scope
except ImportError:  # pragma: no cover - another FastAPI: no index, FastAPI's scan
    _apply_router_form_limits = None

Index = dict[tuple[str, str], Route]
Buckets = dict[str | None, tuple[Route, ...]]
"""First path segment -> the routes with path parameters that can match a path starting with
it (those whose own first segment is that literal, and those whose first segment holds a
parameter), in declaration order; key ``None`` holds the second kind alone (any other path)."""


def _segment(path: str) -> str:
    """The first segment of a path: ``"users"`` for ``/users/...``."""
    return path[1:].split("/", 1)[0]


def _first_segment(template: str) -> str | None:
    """A route template's first segment; None when it holds a parameter."""
    segment = _segment(template)
    return None if "{" in segment else segment


def build_buckets(routes: list[Any]) -> Buckets:
    """The routes with path parameters before the first route that is not a plain ``Route``,
    grouped by the first path segment they can match (see :data:`Buckets`). A static route
    never needs to be here: it matches its own path only, and when it would be the first
    match that path is in the index."""
    plain: list[Route] = []
    for route in routes:
        if isinstance(route, WebSocketRoute):
            continue
        if not isinstance(route, Route):
            break
        if route.param_convertors:
            plain.append(route)
    owns = [(route, _first_segment(route.path_format)) for route in plain]
    keys: set[str | None] = {own for _, own in owns if own is not None}
    keys.add(None)
    return {key: tuple(r for r, own in owns if own is None or own == key) for key in keys}


def build_index(routes: list[Any]) -> Index:
    """``(path, method) -> route`` for the static routes that the scan would reach first; only
    routes before the first one that is not a plain ``Route`` (a mount, a host, an included
    router: they match by more than path and method) are indexed."""
    index: Index = {}
    earlier: list[Route] = []
    for route in routes:
        if isinstance(route, WebSocketRoute):
            continue  # never matches an HTTP request
        if not isinstance(route, Route):
            break
        if not route.param_convertors and route.methods:
            for method in route.methods:
                probe = {"type": "http", "path": route.path, "root_path": "", "method": method}
                if (route.path, method) not in index and all(
                    other.matches(probe)[0] is not Match.FULL for other in earlier
                ):
                    index[(route.path, method)] = route
        earlier.append(route)
    return index


class IndexedRouter(APIRouter):
    """FastAPI's router with the static-route index in front of its scan."""

    _fastplug_index: Index | None = None
    _fastplug_buckets: Buckets | None = None
    _fastplug_index_key: tuple[int, int, int] = (-1, -1, -1)

    def _indexes(self) -> tuple[Index, Buckets]:
        key = (self._routes_version, len(self.routes), id(self.routes))
        if key != self._fastplug_index_key:
            self._fastplug_index = build_index(self.routes)
            self._fastplug_buckets = build_buckets(self.routes)
            self._fastplug_index_key = key
        assert self._fastplug_index is not None and self._fastplug_buckets is not None
        return self._fastplug_index, self._fastplug_buckets

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            index, buckets = self._indexes()
            path = get_route_path(scope)
            route = index.get((path, scope["method"]))
            if route is not None:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    await self._handle(route, child_scope, scope, receive, send)
                    return
            else:
                # the routes with parameters that can match this path, in order: the first full
                # match is the scan's (anything else, partial matches and 405s, is the scan's)
                candidates = buckets.get(_segment(path)) or buckets[None]
                for route in candidates:
                    match, child_scope = route.matches(scope)
                    if match is Match.FULL:
                        await self._handle(route, child_scope, scope, receive, send)
                        return
        await super().app(scope, receive, send)

    async def _handle(self, route: Route, child_scope: Scope, scope: Scope, receive: Receive, send: Send) -> None:
        """What FastAPI's router does with a full match."""
        _apply_router_form_limits(scope, self.form_limits)
        if "router" not in scope:
            scope["router"] = self
        _update_scope(scope, child_scope)
        _route_selected(scope=scope, path=route.path_format)
        await route.handle(scope, receive, send)


def index_routes(app: FastAPI) -> None:
    """Give ``app`` the static-route index (nothing where this FastAPI lacks what it needs)."""
    router = app.router
    stack = router.middleware_stack
    if _apply_router_form_limits is None or type(router) is not APIRouter:
        return
    if getattr(stack, "__func__", None) is not APIRouter.app or getattr(stack, "__self__", None) is not router:
        return  # the router has middleware of its own around its scan: leave it as it is
    router.__class__ = IndexedRouter  # same object, same state: only the lookup is added
    router.middleware_stack = router.app
