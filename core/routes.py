"""Flatten an app's routes, included routers too, whatever the FastAPI version."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from starlette.routing import BaseRoute

try:  # FastAPI >= 0.150 includes routers lazily
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
