"""The rate-limit middleware (pure ASGI, inside metrics, outside the cache).

Each request that a rule covers (:mod:`.rules`) takes one cell from its client's bucket: on
the memory backend in this process, on Redis in one script call shared by every process. An
allowed response carries ``RateLimit-Limit``/``-Remaining``/``-Reset`` and ``RateLimit-Policy``
(the IETF draft); a refused one is 429 with those and ``Retry-After``, before the route (or
the cache) runs. Redis down: allowed without headers (``fail_open``), or 503 + Retry-After.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from fastplug.core import AccessRule, Answer
from fastplug.plugins.security.api import LIMITS
from fastplug.plugins.security.limits import Decision, LimiterUnavailable, MemoryLimiter
from fastplug.plugins.security.middleware import RATE_LIMIT_HEADERS, SecurityStats
from fastplug.plugins.security.rules import Rule, Rules

log = logging.getLogger("fastplug.security")
Header = tuple[bytes, bytes]
Identity = Callable[[Scope], str | None]
LIMITED_BODY = b'{"detail":"rate limit exceeded"}'
UNAVAILABLE_BODY = b'{"detail":"rate limiter unavailable"}'


@dataclass(slots=True)
class Limits:
    """What the middleware needs at request time, made by the plugin's lifespan (the routes
    marked ``@rate_limit`` are known only once the app is built)."""

    rules: Rules
    limiter: Any  # MemoryLimiter or RedisLimiter
    fail_open: bool = True
    identities: tuple[Identity, ...] = ()  # plugins' rate_limit_identity, tried first

    immediate: bool = field(init=False)
    """Whether a decision needs no await (the memory backend)."""

    def __post_init__(self) -> None:
        self.immediate = isinstance(self.limiter, MemoryLimiter)


def _response(status: int, body: bytes, headers: Sequence[Header]) -> tuple[int, list[Header], bytes]:
    return (
        status,
        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        body,
    )


class RateLimitMiddleware:
    """See the module docstring. A client is named by plugins' ``rate_limit_identity``
    functions (in order), else by ``identity_header``'s value, else by its address."""

    def __init__(
        self,
        app: ASGIApp,
        identity_header: str = "",
        exempt: AccessRule | None = None,
        stats: SecurityStats | None = None,
        ipv6_prefix: int = 64,
    ) -> None:
        self.app = app
        self.ipv6_prefix = ipv6_prefix
        self._networks: dict[str, str] = {}  # IPv6 address -> its network's bucket name
        self.identity_header = identity_header.encode()
        self.exempt = exempt
        self.stats = stats or SecurityStats()
        self._exempt_memo: dict[str, bool] = {}
        self._full: dict[tuple[bytes, Decision], list[Header]] = {}
        self._inner_now: Callable[[Scope], Answer | None] | None = getattr(app, "answer_now", None)

    def _identity(self, scope: Scope, identities: tuple[Identity, ...]) -> str | None:
        """The client's bucket name, or None when it is exempt."""
        for identity in identities:
            try:
                found = identity(scope)
                name = None if found is None or found == "" else "u:" + str(found)
            except Exception:  # a plugin's bug must not become a 500 at the edge: the next one decides
                log.exception("rate limits: a rate_limit_identity function failed; the next identity is used")
                continue
            if name is not None:
                return name
        if self.identity_header:
            for name, value in scope["headers"]:
                if name == self.identity_header and value:
                    # the key itself never lands in a Redis key name or a log
                    return "k:" + hashlib.blake2b(value, digest_size=12).hexdigest()
        client = scope.get("client")
        address = client[0] if client else "-"
        if self.exempt is not None:
            exempt = self._exempt_memo.get(address)
            if exempt is None:
                exempt = self.exempt.admits_address(address)
                if len(self._exempt_memo) >= 4096:
                    self._exempt_memo.clear()
                self._exempt_memo[address] = exempt
            if exempt:
                return None
        if ":" in address:  # IPv6: a host is given a /64 (or more), each address of it is the same client
            return self._network(address)
        return "a:" + address

    def _network(self, address: str) -> str:
        known = self._networks.get(address)
        if known is None:
            try:
                ip = ipaddress.IPv6Address(address.split("%", 1)[0])
            except ValueError:
                return "a:" + address
            mapped = ip.ipv4_mapped
            if mapped is not None:
                known = "a:" + str(mapped)
            else:
                network = ipaddress.IPv6Network((ip, self.ipv6_prefix), strict=False)
                known = f"a:{network.network_address}/{self.ipv6_prefix}"
            if len(self._networks) >= 4096:
                self._networks.clear()
            self._networks[address] = known
        return known

    def _covered(self, scope: Scope) -> tuple[Limits, Rule, Any, str] | None:
        state = scope.get("state")
        limits: Limits | None = state.get(LIMITS) if state else None
        if limits is None or limits.rules.empty:
            return None
        found = limits.rules.find(scope["method"], scope["path"])
        if found is None:
            return None
        rule, route = found
        identity = self._identity(scope, limits.identities)
        return None if identity is None else (limits, rule, route, f"{rule.name}|{identity}")

    def _limited(self, scope: Scope, decision: Decision, rule: Rule, route: Any) -> tuple[int, list[Header], bytes]:
        self.stats.count("rate_limit")
        if route is not None:
            scope["route"] = route  # as routing would: metrics label the 429 by route template
        return _response(429, LIMITED_BODY, decision.headers(rule.policy))

    def answer_now(self, scope: Scope) -> Answer | None:
        """The inner answer (a cache hit) once this request's cell is taken, a 429 when none is
        left, or None (nothing taken) when the inner has no answer or Redis must be asked."""
        inner = self._inner_now
        if inner is None:
            return None
        covered = self._covered(scope)
        if covered is None:
            return inner(scope)
        limits, rule, route, key = covered
        if not limits.immediate:
            return None
        decision = limits.limiter.peek(key, rule.rate)
        if not decision.allowed:
            return self._limited(scope, decision, rule, route)
        answer = inner(scope)
        if answer is None:
            return None
        decision = limits.limiter.hit(key, rule.rate)  # no await since peek: the same decision
        status, headers, body = answer
        return status, [*headers, *self._headers(decision, rule)], body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        covered = self._covered(scope) if scope["type"] == "http" else None
        if covered is None:
            await self.app(scope, receive, send)
            return
        limits, rule, route, key = covered
        try:
            decision = (
                limits.limiter.hit(key, rule.rate) if limits.immediate else await limits.limiter.ahit(key, rule.rate)
            )
        except LimiterUnavailable:
            self.stats.count("unavailable")
            if limits.fail_open:
                await self.app(scope, receive, send)
                return
            status, headers, body = _response(503, UNAVAILABLE_BODY, [(b"retry-after", b"1")])
            await _send(send, status, headers, body, scope["method"])
            return
        if not decision.allowed:
            status, headers, body = self._limited(scope, decision, rule, route)
            await _send(send, status, headers, body, scope["method"])
            return
        scope[RATE_LIMIT_HEADERS] = self._headers(decision, rule)  # added by the security middleware's send
        await self.app(scope, receive, send)

    def _headers(self, decision: Decision, rule: Rule) -> list[Header]:
        """``decision``'s headers; those of a bucket that was full (the same each time) are
        encoded once per rule."""
        if decision.remaining != decision.limit - 1:
            return decision.headers(rule.policy)
        ident = (rule.policy, decision)
        found = self._full.get(ident)
        if found is None:
            found = decision.headers(rule.policy)
            if len(self._full) < 256:
                self._full[ident] = found
        return found


async def _send(send: Send, status: int, headers: list[Header], body: bytes, method: str) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
