"""Which rate applies to a request: settings patterns, then ``@rate_limit`` routes, then the default."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path

from fastplug.core import iter_routes
from fastplug.plugins.security.api import MARK
from fastplug.plugins.security.limits import Rate, policy_header

MEMO_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Rule:
    """One rate and the bucket name its requests share (per client)."""

    name: str
    rate: Rate
    policy: bytes


Found = tuple[Rule, Any] | None
"""A request's rule and the route that serves it (None when routing would find none), or None."""


@dataclass(frozen=True, slots=True)
class _Pattern:
    methods: frozenset[str] | None
    regex: re.Pattern[str]
    rule: Rule


@dataclass(frozen=True, slots=True)
class _Marked:
    methods: frozenset[str]
    regex: re.Pattern[str]
    rule: Rule


def rule(name: str, rate: Rate) -> Rule:
    return Rule(name, rate, policy_header(rate))


def patterns_of(routes: Mapping[str, str]) -> tuple[_Pattern, ...]:
    """``{"GET /products/*": "100/minute"}`` compiled, in the order given."""
    out = []
    for key, text in routes.items():
        method, _, pattern = key.strip().rpartition(" ")
        methods = (
            None
            if method in ("", "*")
            else frozenset({method.upper()} | ({"HEAD"} if method.upper() == "GET" else set()))
        )
        out.append(_Pattern(methods, re.compile(fnmatch.translate(pattern)), rule(key.strip(), Rate.parse(text))))
    return tuple(out)


def _http_routes(routes: Iterable[Any]) -> Iterator[tuple[frozenset[str], str, re.Pattern[str], Any]]:
    """``(methods, path template, path regex, route)`` of each HTTP route, included routers
    expanded (FastAPI keeps a router with websockets or mounts as one wrapper route), the path
    as served (with its router's prefix)."""
    for row in iter_routes(list(routes)):
        if row.methods:
            yield frozenset(row.methods), row.path, compile_path(row.path)[0], row.original


def plain_routes(routes: Iterable[Any]) -> tuple[tuple[frozenset[str], re.Pattern[str], Any], ...]:
    """The app's HTTP routes as ``(methods, path regex, route)``, in declaration order: the route
    a refused request is labelled with in metrics, as routing would have found it."""
    return tuple((methods, regex, route) for methods, _, regex, route in _http_routes(routes))


def marked_routes(routes: Iterable[Any]) -> tuple[_Marked, ...]:
    """The app's routes whose endpoint carries ``@rate_limit``, in declaration order."""
    out = []
    for route_methods, path, regex, route in _http_routes(routes):
        rate = getattr(getattr(route, "endpoint", None), MARK, None)
        if rate is not None:
            methods = set(route_methods) | ({"HEAD"} if "GET" in route_methods else set())
            # by methods and path: two routes whose functions share a name keep their own buckets
            name = f"route:{','.join(sorted(methods))} {path}"
            out.append(_Marked(frozenset(methods), regex, rule(name, rate)))
    return tuple(out)


class Rules:
    """The rule for ``(method, path)`` and its route, memoised (bounded) per distinct pair."""

    def __init__(
        self,
        patterns: tuple[_Pattern, ...],
        marked: tuple[_Marked, ...],
        default: Rate | None,
        routes: tuple[tuple[frozenset[str], re.Pattern[str], Any], ...] = (),
    ) -> None:
        self.patterns, self.marked, self.routes = patterns, marked, routes
        self.default = rule("default", default) if default is not None else None
        self.empty = not patterns and not marked and default is None
        self._memo: dict[tuple[str, str], Found] = {}

    def find(self, method: str, path: str) -> Found:
        ident = (method, path)
        memo = self._memo
        try:
            return memo[ident]
        except KeyError:
            pass
        found = self._find(method, path)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[ident] = found
        return found

    def _find(self, method: str, path: str) -> Found:
        found = self._rule(method, path)
        if found is None:
            return None
        route = next((r for methods, regex, r in self.routes if method in methods and regex.match(path)), None)
        return found, route

    def _rule(self, method: str, path: str) -> Rule | None:
        for pattern in self.patterns:
            if (pattern.methods is None or method in pattern.methods) and pattern.regex.match(path):
                return pattern.rule
        for marked in self.marked:
            if method in marked.methods and marked.regex.match(path):
                return marked.rule
        return self.default
