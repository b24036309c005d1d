"""The cache service: which routes are cached and how, counters, invalidation."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute

from fastplug.core import iter_routes
from fastplug.plugins.cache.api import CachePolicy, policy_of
from fastplug.plugins.cache.backends import Backend, BackendUnavailable, MemoryBackend
from fastplug.plugins.cache.settings import CacheSettings

log = logging.getLogger("fastplug.cache")
Params = tuple[tuple[str, str], ...]
"""A route's path parameters, sorted by name."""


MATCH_MEMO_PATH = 256
"""Longer paths are matched each time, never remembered (the memo's bytes stay bounded)."""


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """A cacheable route, resolved against the ``[cache]`` defaults."""

    name: str
    template: str
    route: Any  # the route object, put in scope["route"] on a hit (metrics label by it)
    ttl: float
    stale: float
    tags: tuple[str, ...]
    cache_control: bytes


@dataclass(slots=True)
class _Candidate:
    regex: re.Pattern[str]
    get: bool
    policy: RoutePolicy | None


@dataclass(slots=True)
class Stats:
    """Outcomes since start (exposed to the metrics plugin)."""

    hit: int = 0
    miss: int = 0
    stale: int = 0
    bypass: int = 0
    error: int = 0

    def as_dict(self) -> dict[str, int]:
        """``{"hit": n, ...}``."""
        return {"hit": self.hit, "miss": self.miss, "stale": self.stale, "bypass": self.bypass, "error": self.error}


def _resolve(conf: CacheSettings, route: APIRoute) -> RoutePolicy | None:
    configured = conf.routes.get(route.name) or conf.routes.get(route.path)
    marked = policy_of(route.endpoint)
    if configured is not None:
        policy = CachePolicy(
            configured.ttl, tuple(configured.tags), configured.stale_while_revalidate, configured.cache_control
        )
    elif marked is not None:
        policy = marked
    else:
        return None
    ttl = policy.ttl if policy.ttl is not None else conf.default_ttl
    control = policy.cache_control or conf.cache_control
    return RoutePolicy(
        name=route.name,
        template=route.path,
        route=route,
        ttl=ttl,
        stale=policy.stale_while_revalidate
        if policy.stale_while_revalidate is not None
        else conf.stale_while_revalidate,
        tags=policy.tags,
        cache_control=control.replace("{ttl}", str(int(ttl))).encode(),
    )


class Cache:
    """What the middleware and other plugins use: route policies, backend, counters."""

    def __init__(self, conf: CacheSettings, backend: Backend, routes: Sequence[Any]) -> None:
        self.conf = conf
        self._memo_size = conf.memo_size
        self.backend = backend
        self.stats = Stats()
        self.flights: dict[str, asyncio.Future[Any]] = {}
        self.background: set[asyncio.Task[None]] = set()
        candidates: list[_Candidate] = []
        route_paths: list[str | None] = []  # the path of a route without parameters
        for route in routes:
            if isinstance(route, APIRoute):
                candidates.append(_Candidate(route.path_regex, "GET" in route.methods, _resolve(conf, route)))
                route_paths.append(None if route.param_convertors else route.path)
        self._candidates = candidates
        self._cached = [(i, c) for i, c in enumerate(candidates) if c.policy is not None and c.get]
        # per cached route, the GET routes before it that would win: static paths (a set
        # lookup) and the rest (a regex each), so a miss of the memo costs a few lookups
        self._earlier: list[tuple[frozenset[str], list[re.Pattern[str]]]] = []
        for index, _ in self._cached:
            before = [(c, route_paths[i]) for i, c in enumerate(candidates[:index]) if c.get]
            static = frozenset(path for c, path in before if path is not None)
            self._earlier.append((static, [c.regex for c, path in before if path is None]))
        self.policies: list[RoutePolicy] = [c.policy for _, c in self._cached if c.policy is not None]
        # path -> (index in policies, path parameters as sorted pairs): tuples of numbers and
        # strings only, which the garbage collector stops tracking (a policy object or a dict
        # in each of 100,000 memo entries made every full collection walk them all)
        self._matches: dict[str, tuple[int, Params] | None] = {}
        self.get_now = backend.get_now if isinstance(backend, MemoryBackend) else None

    def match(self, path: str) -> tuple[RoutePolicy, Params] | None:
        """The cacheable route that will serve GET ``path`` (respecting route order), if any,
        and its path parameters (sorted by name); remembered per path (bounded)."""
        try:
            found = self._matches[path]
        except KeyError:
            found = self._match(path)
            if len(path) <= MATCH_MEMO_PATH:  # bounded whatever clients send: longer ones matched each time
                if len(self._matches) >= self._memo_size:
                    self._matches.clear()
                self._matches[path] = found
        return None if found is None else (self.policies[found[0]], found[1])

    def _match(self, path: str) -> tuple[int, Params] | None:
        for index, ((_, candidate), (static, patterns)) in enumerate(zip(self._cached, self._earlier, strict=True)):
            found = candidate.regex.match(path)
            if found is None:
                continue
            if path in static or any(regex.match(path) for regex in patterns):  # an earlier GET route wins
                return None
            return index, tuple(sorted(found.groupdict().items()))
        return None

    async def invalidate(
        self,
        *,
        tags: Iterable[str] = (),
        routes: Iterable[str] = (),
        paths: Iterable[str] = (),
        keys: Iterable[str] = (),
    ) -> int:
        """Drop entries by tag, route name, request path (all its variants) or key; how many.

        When the backend is down the invalidation is kept by the backend and applied before
        this process reads from it again, and in the background as soon as it answers (see
        ``RedisBackend``): logged, not raised, since the write that asked for it stands."""
        all_tags = [*tags, *(f"route:{r}" for r in routes), *(f"path:{p}" for p in paths)]
        try:
            return await self.backend.invalidate(all_tags, keys)
        except BackendUnavailable as exc:
            self.stats.error += 1
            log.warning("cache invalidation deferred (%s): kept, applied when the cache backend answers", exc)
            return 0

    async def close(self) -> None:
        """Wait for background refreshes to finish; close the backend."""
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.backend.close()


def routes_of(app: Any) -> list[Any]:
    """Every route of the app in matching order (included routers expanded)."""
    return [row.original for row in iter_routes(app.router.routes)]
