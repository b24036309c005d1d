"""``GET /metrics``: the exposition, for allowed networks or a bearer token."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from ipaddress import ip_address

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from fastplug.plugins.metrics.instruments import Instruments
from fastplug.plugins.metrics.settings import MetricsSettings


def access_rule(conf: MetricsSettings) -> Callable[[Request], int | None]:
    """``check(request)``: None when the request may scrape, else the status to answer
    (401 when a token would do, 403 otherwise)."""
    networks = tuple(conf.allow)
    token = conf.token.get_secret_value().encode() if conf.token is not None else None

    def check(request: Request) -> int | None:
        client = request.scope.get("client")
        if client and networks:
            try:
                address = ip_address(client[0])
            except ValueError:
                address = None
            if address is not None and any(address in network for network in networks):
                return None
        if token is None:
            return 403
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
            return None
        return 401

    return check


def build_router(conf: MetricsSettings, instruments_of: Callable[[Request], Instruments]) -> APIRouter:
    """The scrape route; ``instruments_of(request)`` finds the app's :class:`Instruments`."""
    router = APIRouter()
    denied = access_rule(conf)

    @router.get(conf.path, name="metrics", include_in_schema=conf.include_in_schema, response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        status = denied(request)
        if status == 401:
            return PlainTextResponse("unauthorized\n", 401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        if status is not None:
            return PlainTextResponse("forbidden\n", 403)
        body, content_type = instruments_of(request).exposition(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return router
