"""The security plugin's public module: ``@rate_limit`` and the service it runs.

Limit one route from code, without depending on the plugin being enabled::

    from fastplug.plugins.security.api import rate_limit

    @router.post("/orders")
    @rate_limit("10/minute")
    async def create_order(...): ...

Each client (its address through trusted proxies, ``[security.rate_limits] identity_header``'s
value, or what a plugin's ``rate_limit_identity`` hook gives) then has its own bucket for this
route. A ``[security.rate_limits] routes`` pattern that matches the route wins over the
decorator. ``@no_security_headers`` opts one route out of the security headers. Without the
security plugin both change nothing. Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastplug.plugins.security.limits import Rate

F = TypeVar("F", bound=Callable[..., Any])

HEADERS_MARK = "__fastplug_no_security_headers__"
LIMITS = "security.limits"
"""The service key (and lifespan state key) of the running rate limits."""
MARK = "__fastplug_rate_limit__"


def rate_limit(rate: str) -> Callable[[F], F]:
    """Mark an endpoint: at most ``rate`` (``"100/minute"``, ``"5/10s"``) per client."""
    parsed = Rate.parse(rate)

    def mark(endpoint: F) -> F:
        setattr(endpoint, MARK, parsed)
        return endpoint

    return mark


def no_security_headers(endpoint: F) -> F:
    """Mark an endpoint whose responses get none of ``[security.headers]`` (a page that must
    be framed, say); ``[security.headers] exclude_paths`` does the same by path."""
    setattr(endpoint, HEADERS_MARK, True)
    return endpoint


__all__ = ["LIMITS", "no_security_headers", "rate_limit"]
