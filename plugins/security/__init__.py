"""security plugin: allowed hosts, CORS, security headers and rate limits, as pure ASGI.

Two edge middleware, both configured in ``[security]``:

* ``security`` (priority 10, outermost): a ``Host`` outside ``allowed_hosts`` is answered 400
  before routing, the cache or metrics; CORS preflights are answered; every response gets the
  security headers (computed once) and a cross-origin request its CORS headers.
* ``security.rate_limits`` (priority 120: inside metrics, so a 429 is counted by route;
  outside the cache, so a hit takes a cell too): GCRA buckets per client, in memory or on the
  redis plugin's Redis (one script call per request), from ``[security.rate_limits] routes``
  and ``@rate_limit(...)`` (:mod:`.api`).

The client address, scheme and host they read come from core's trusted-proxy handling
(``[server] proxy_headers`` and ``forwarded_allow_ips``), the same for every plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pluggy
from fastapi import FastAPI

from fastplug.config import Settings
from fastplug.core import AccessRule, CheckMessage, MiddlewareSpec, PluginInfo, Services, hookimpl
from fastplug.plugins.security import hookspecs
from fastplug.plugins.security.api import LIMITS
from fastplug.plugins.security.settings import SecuritySettings

PRIORITY = 10  # outermost: before metrics (100) labels anything
RATE_LIMIT_PRIORITY = 120  # inside metrics, outside the cache (150)


def _conf(settings: Settings) -> SecuritySettings:
    return settings.section("security", SecuritySettings)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="security",
        settings=SecuritySettings,
        after=("redis",),
        description="allowed hosts, CORS, security headers, rate limits (memory or Redis)",
    )


@hookimpl
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    pm.add_hookspecs(hookspecs)


@hookimpl
def register_middleware(settings: Settings) -> Sequence[MiddlewareSpec]:
    from fastplug.plugins.security.cors import Cors
    from fastplug.plugins.security.headers import static_headers
    from fastplug.plugins.security.hosts import AllowedHosts
    from fastplug.plugins.security.middleware import SecurityMiddleware, SecurityStats

    conf = _conf(settings)
    stats = SecurityStats()
    options = {
        "hosts": AllowedHosts(conf.allowed_hosts, conf.www_redirect),
        "cors": Cors(conf.cors),
        "plain": static_headers(conf.headers, https=False),
        "https": static_headers(conf.headers, https=True),
        "exclude_paths": tuple(conf.headers.exclude_paths),
        "stats": stats,
        "websocket_same_origin": conf.websocket_same_origin,
    }
    specs = [MiddlewareSpec("security", SecurityMiddleware, options, priority=PRIORITY, edge=True)]
    limits = conf.rate_limits
    if limits.enabled:
        from fastplug.plugins.security.ratelimit import RateLimitMiddleware

        exempt = AccessRule.build(limits.exempt) if limits.exempt else None
        rl_options = {
            "identity_header": limits.identity_header,
            "exempt": exempt,
            "stats": stats,
            "ipv6_prefix": limits.ipv6_prefix,
        }
        specs.append(
            MiddlewareSpec(
                "security.rate_limits", RateLimitMiddleware, rl_options, priority=RATE_LIMIT_PRIORITY, edge=True
            )
        )
    return specs


@hookimpl
def lifespan(app: FastAPI, settings: Settings, services: Services) -> Any:
    conf = _conf(settings).rate_limits
    if not conf.enabled:
        return None

    @asynccontextmanager
    async def run() -> AsyncIterator[dict[str, Any]]:
        from fastplug.plugins.security.limits import MemoryLimiter, Rate
        from fastplug.plugins.security.ratelimit import Limits
        from fastplug.plugins.security.rules import Rules, marked_routes, patterns_of, plain_routes

        routes = app.router.routes
        default = Rate.parse(conf.default) if conf.default else None
        rules = Rules(patterns_of(conf.routes), marked_routes(routes), default, plain_routes(routes))
        if conf.backend == "redis":
            from fastplug.plugins.redis.api import CLIENT as REDIS_CLIENT
            from fastplug.plugins.security.limits_redis import RedisLimiter

            client = services.get(REDIS_CLIENT)
            if client is None:
                raise RuntimeError(
                    '[security.rate_limits] backend = "redis" needs the redis plugin enabled with [redis] url set'
                )
            limiter: Any = RedisLimiter(client, conf.key_prefix, conf.op_timeout)
        else:
            limiter = MemoryLimiter(conf.max_keys)
        # other plugins' rate_limit_identity functions, in dependency order
        plugins = app.state.fastplug.plugins
        identities = tuple(fn for _, fn in plugins.call_each("rate_limit_identity", settings=settings) if fn)
        yield {LIMITS: Limits(rules, limiter, conf.fail_open, identities)}

    return run()


@hookimpl(optionalhook=True)
def register_metrics(registry: Any, runtime: Any) -> None:
    """``security_requests_refused_total{reason=host|cors|rate_limit|unavailable}`` (metrics plugin)."""
    from prometheus_client import Counter

    counter = Counter(
        "security_requests_refused", "Requests the security plugin refused, by reason", ["reason"], registry=registry
    )
    for _, spec in runtime.middleware:
        stats = spec.options.get("stats") if spec.name.startswith("security") else None
        if stats is not None:
            stats.counter = counter


@hookimpl
def check(settings: Settings) -> Sequence[CheckMessage]:
    from fastplug.plugins.security.checks import security_checks

    return security_checks(_conf(settings), settings)
