"""Which rate applies to a request: settings patterns, then ``@rate_limit`` routes, then the default."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastplug.plugins.security.api import MARK
from fastplug.plugins.security.limits import Rate, policy_header

MEMO_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Rule:
    """One rate and the bucket name its requests share (per client)."""

    name: str
    rate: Rate
    policy: bytes


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


def marked_routes(routes: Iterable[Any]) -> tuple[_Marked, ...]:
    """The app's routes whose endpoint carries ``@rate_limit``, in declaration order."""
    out = []
    for route in routes:
        rate = getattr(getattr(route, "endpoint", None), MARK, None)
        if rate is not None and getattr(route, "methods", None):
            name = f"route:{getattr(route, 'name', route.path)}"
            out.append(_Marked(frozenset(route.methods), route.path_regex, rule(name, rate)))
    return tuple(out)


class Rules:
    """The rule for ``(method, path)``, memoised (bounded) per distinct pair."""

    def __init__(self, patterns: tuple[_Pattern, ...], marked: tuple[_Marked, ...], default: Rate | None) -> None:
        self.patterns, self.marked = patterns, marked
        self.default = rule("default", default) if default is not None else None
        self.empty = not patterns and not marked and default is None
        self._memo: dict[tuple[str, str], Rule | None] = {}

    def find(self, method: str, path: str) -> Rule | None:
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

    def _find(self, method: str, path: str) -> Rule | None:
        for pattern in self.patterns:
            if (pattern.methods is None or method in pattern.methods) and pattern.regex.match(path):
                return pattern.rule
        for marked in self.marked:
            if method in marked.methods and marked.regex.match(path):
                return marked.rule
        return self.default
