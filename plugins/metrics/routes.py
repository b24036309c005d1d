"""``GET /metrics``: the exposition, for the clients the access rule admits.

The same answer on the app's port (a route) and on the metrics port (:mod:`.port`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.datastructures import Headers

from fastplug.core import AccessRule
from fastplug.plugins.metrics.instruments import Instruments
from fastplug.plugins.metrics.settings import MetricsSettings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


def access_rule(conf: MetricsSettings) -> AccessRule:
    """Who may scrape: ``[metrics] allow`` (unset: loopback, or nobody once a token is set) or the token."""
    return AccessRule.build(conf.allow, conf.token)


def scrape(rule: AccessRule, instruments: Instruments, scope: Mapping[str, Any]) -> Response:
    """The answer to a scrape: the exposition, 401 with a Bearer challenge, or 403."""
    status = rule.decide(scope)
    if status == 401:
        return PlainTextResponse("unauthorized\n", 401, headers=CHALLENGE)
    if status is not None:
        return PlainTextResponse("forbidden\n", 403)
    body, content_type = instruments.exposition(Headers(scope=scope).get("accept"))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def build_router(conf: MetricsSettings, instruments_of: Callable[[Request], Instruments]) -> APIRouter:
    """The scrape route; ``instruments_of(request)`` finds the app's :class:`Instruments`."""
    router = APIRouter()
    rule = access_rule(conf)

    @router.get(conf.path, name="metrics", include_in_schema=conf.include_in_schema, response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        return scrape(rule, instruments_of(request), request.scope)

    return router
