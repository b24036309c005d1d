"""Services: what plugin lifespans yield (pools, clients), shared with handlers and plugins."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

T = TypeVar("T")
SERVICE_KEY = "__fastplug_service__"
"""The attribute naming the service a :func:`service` dependency reads (for the lean route path)."""


class ServiceMissing(LookupError):  # noqa: N818 - reads as the condition it is
    """A handler or plugin asked for a service no started plugin provides."""


class Services(dict[str, Any]):
    """Name -> object, filled by plugin lifespans in start order.

    Plugins reach each other's resources only through here (e.g. the cache plugin
    gets the ``redis.client`` the redis plugin yielded), never by importing internals.
    """

    def require(self, key: str, tp: type[T] | None = None) -> T:
        """The service ``key``; raises :class:`ServiceMissing` naming what exists."""
        try:
            value = self[key]
        except KeyError:
            known = ", ".join(sorted(self)) or "none"
            raise ServiceMissing(f"no service '{key}' (started services: {known})") from None
        if tp is not None and not isinstance(value, tp):
            raise TypeError(f"service '{key}' is {type(value).__name__}, not {tp.__name__}")
        return cast(T, value)


def service(key: str, tp: type[T]) -> Any:
    """A typed FastAPI dependency for the service ``key``.

    ``Engine = service("db.engine", AsyncEngine)`` then ``async def h(engine: Engine)``.
    The lookup is one dict access in the request's lifespan state.
    """

    async def get(conn: HTTPConnection) -> T:  # async: FastAPI would run a plain def in a thread
        try:
            return cast(T, conn.scope["state"][key])
        except KeyError:
            raise ServiceMissing(f"no service '{key}': is the plugin that provides it enabled and started?") from None

    get.__name__ = f"service_{key.replace('.', '_')}"
    setattr(get, SERVICE_KEY, key)
    return Annotated[tp, Depends(get)]
