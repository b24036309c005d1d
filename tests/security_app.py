"""A plugin for the security tests: a route limited from code, an open one, a cached one, and a
rate-limit identity taken from ``X-Tenant``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Response, WebSocket

from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.cache.api import cached
from fastplug.plugins.security.api import no_security_headers, rate_limit

calls: Counter[str] = Counter()
router = APIRouter()


@router.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


@router.get("/limited")
@rate_limit("3/minute")
async def limited() -> dict[str, str]:
    calls["limited"] += 1
    return {"ok": "limited"}


@router.get("/open")
async def open_route(response: Response) -> dict[str, str]:
    calls["open"] += 1
    response.headers["x-frame-options"] = "SAMEORIGIN"  # a route's own value wins
    return {"ok": "open"}


@router.get("/frameable")
@no_security_headers
async def frameable() -> dict[str, str]:
    return {"ok": "frameable"}


@router.get("/cached/{item_id}")
@cached(ttl=60)
@rate_limit("100/minute")
async def cached_item(item_id: int) -> dict[str, int]:
    calls["cached"] += 1
    return {"id": item_id, "calls": calls["cached"]}


def _twin(path: str, rate: str) -> None:
    async def twin() -> dict[str, str]:  # both endpoints are named "twin"
        return {"twin": path}

    router.get(path)(rate_limit(rate)(twin))


_twin("/twin-a", "1/minute")
_twin("/twin-b", "100/minute")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="guarded", after=("cache", "security"))


@hookimpl
def register_routers() -> Sequence[APIRouter]:
    return [router]


@hookimpl(optionalhook=True)
def rate_limit_identity(settings: Any) -> Any:
    def tenant(scope: Mapping[str, Any]) -> str | None:
        for name, value in scope["headers"]:
            if name == b"x-tenant":
                return "tenant:" + value.decode("latin-1")
        return None

    return tenant
