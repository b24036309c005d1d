"""Find a static route by a dict lookup instead of trying every route before it.

Starlette and FastAPI match a request against the app's routes one by one, a regex per route,
so a route's cost grows with the number of routes declared before it (FastAPI's docs routes,
then every plugin's). :class:`IndexedRouter` keeps, for each ``(path, method)`` of a route
without path parameters, the route that the linear scan would pick first, computed once from
the route list, and goes straight to it. It then does exactly what FastAPI's router does with
a full match (the same scope updates, the same telemetry, ``route.handle``). Everything else
(path parameters, mounts, hosts, included routers, 404/405, slash redirects) takes FastAPI's
scan, and the index is rebuilt whenever the route list changes.
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
    _fastplug_index_key: tuple[int, int, int] = (-1, -1, -1)

    def _index(self) -> Index:
        key = (self._routes_version, len(self.routes), id(self.routes))
        if key != self._fastplug_index_key:
            self._fastplug_index = build_index(self.routes)
            self._fastplug_index_key = key
        assert self._fastplug_index is not None
        return self._fastplug_index

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._index().get((get_route_path(scope), scope["method"]))
            if route is not None:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    _apply_router_form_limits(scope, self.form_limits)
                    if "router" not in scope:
                        scope["router"] = self
                    _update_scope(scope, child_scope)
                    _route_selected(scope=scope, path=route.path_format)
                    await route.handle(scope, receive, send)
                    return
        await super().app(scope, receive, send)


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
