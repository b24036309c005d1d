"""The response-cache contract plugins and apps build on (the ``cache`` plugin implements it).

Mark a route cacheable without depending on the cache plugin::

    from fastplug.plugins.cache.api import ResponseCache, cached

    @router.get("/products/{product_id}")
    @cached(ttl=600, tags=["products"])
    async def get_product(product_id: int, tags: CacheTags) -> ProductOut:
        tags.append(f"product:{product_id}")  # what this answer depends on, once known
        ...

and invalidate after writes, from a handler::

    async def update_product(..., cache: ResponseCache) -> ...:
        ...
        await cache.invalidate(tags=[f"product:{product_id}"])

An entry's tags are the route's (``@cached(tags=...)``, static), its route name and path
(``route:<name>``, ``path:<path>``), and whatever its handler appended to :data:`CacheTags`
while computing it: tags from the data read (a page tags each row it shows), so a write
invalidates only the answers that showed what it changed. Those are checked by the fill's
compare-and-set like the others: a tag invalidated while the handler ran (even before the
handler appended it) keeps the answer from being stored.

Without the cache plugin, ``@cached`` changes nothing, ``CacheTags`` is a list nobody reads
and ``ResponseCache`` answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends
from starlette.requests import HTTPConnection

from fastplug.core import service

if TYPE_CHECKING:
    from fastplug.plugins.cache.service import Cache as CacheService

log = logging.getLogger("fastplug.cache")

SERVICE = "cache"
"""The service key of the :class:`CacheService`."""
STATS = "cache.stats"
"""The service key of the cache's hit/miss counters (for metrics)."""
TAGS = "cache.response_tags"
"""Where (``scope["state"]``) the middleware puts the list :data:`CacheTags` gives, during a fill."""
MARK = "__fastplug_cache__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How one route is cached; ``None`` fields take the ``[cache]`` defaults."""

    ttl: float | None = None
    tags: tuple[str, ...] = ()
    stale_while_revalidate: float | None = None
    cache_control: str | None = None


def cached(
    ttl: float | None = None,
    tags: Iterable[str] = (),
    stale_while_revalidate: float | None = None,
    cache_control: str | None = None,
) -> Callable[[F], F]:
    """Mark an endpoint's responses as cacheable (the function itself is unchanged)."""
    policy = CachePolicy(ttl, tuple(tags), stale_while_revalidate, cache_control)

    def mark(endpoint: F) -> F:
        setattr(endpoint, MARK, policy)
        return endpoint

    return mark


def policy_of(endpoint: Callable[..., Any]) -> CachePolicy | None:
    """The policy ``@cached`` attached to ``endpoint``, if any."""
    return getattr(endpoint, MARK, None)


async def _response_tags(conn: HTTPConnection) -> list[str]:
    tags = conn.scope.get("state", {}).get(TAGS)
    return [] if tags is None else tags  # type: ignore[no-any-return]


CacheTags = Annotated[list[str], Depends(_response_tags)]
"""Tags of the answer being computed, beyond its route's: append the ones that depend on
what the handler read (``tags.append(f"product:{row.id}")``). Filled in on cache misses
only; otherwise (a route not cached, no cache plugin) a throwaway list."""

ResponseCache = service(SERVICE, object)
"""The cache plugin's :class:`CacheService` for handlers (``await cache.invalidate(tags=[...])``)."""


async def _optional_cache(conn: HTTPConnection) -> Any:
    return conn.scope.get("state", {}).get(SERVICE)  # type: ignore[no-any-return]


OptionalCache = Annotated[Any, Depends(_optional_cache)]
"""The :class:`CacheService` when the cache plugin runs, else ``None``: for handlers that
work with or without it (writes that invalidate what the cache may hold)."""


async def invalidate_committed(
    cache: CacheService | None,
    *,
    tags: Iterable[str] = (),
    routes: Iterable[str] = (),
    paths: Iterable[str] = (),
) -> None:
    """Invalidate after a write has committed (earlier, a concurrent reader could cache the
    old rows again), through :data:`OptionalCache`: nothing without the cache plugin, and a
    cache that is down is logged, not raised (the write stands). The backend keeps what it
    could not apply and applies it before this process reads from it again, and in the
    background as soon as it answers (``RedisBackend``)."""
    if cache is None:
        return
    try:
        await cache.invalidate(tags=tags, routes=routes, paths=paths)  # an outage is kept, not raised
    except Exception as exc:
        log.warning("cache invalidation failed (%s); the entries expire on their ttl", type(exc).__name__)


def __getattr__(name: str) -> Any:
    # CacheService is the implementation itself (one definition, no Protocol copying it),
    # imported only when asked for.
    if name == "CacheService":
        from fastplug.plugins.cache.service import Cache

        return Cache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
