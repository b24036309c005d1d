"""A plugin with cacheable routes that count their calls (for the cache tests)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence

import anyio
from fastapi import APIRouter, Header, Response
from pydantic import BaseModel

from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.cache.api import CacheTags, ResponseCache, cached

calls: Counter[str] = Counter()
router = APIRouter()
# /gated and /gated-swr: a test holds their handler after it "read the database" (entered)
# until it sets the gate (threading events: tests run in another thread than the server)
gate = threading.Event()
entered = threading.Event()
GATE_TIMEOUT = 10.0


async def _read_then_wait(counter: str) -> int:
    calls[counter] += 1
    seen = calls[counter]  # what the handler read, before a writer gets in
    entered.set()
    await anyio.to_thread.run_sync(gate.wait, GATE_TIMEOUT)
    return seen


class Item(BaseModel):
    id: int
    name: str
    calls: int


@router.get("/items/special")
async def special() -> dict[str, int]:
    calls["special"] += 1
    return {"special": calls["special"]}


@router.get("/items/{item_id}", response_model=Item)
@cached(ttl=60, tags=["items"])
async def get_item(item_id: int) -> dict[str, object]:
    calls["item"] += 1
    return {"id": item_id, "name": f"item {item_id}", "calls": calls["item"], "dropped": "by response_model"}


@router.post("/items/{item_id}")
async def update_item(item_id: int, cache: ResponseCache) -> dict[str, int]:
    return {"invalidated": await cache.invalidate(tags=["items"])}


@router.get("/gated/{name}", name="gated")
@cached(ttl=60, tags=["gated"])
async def gated(name: str) -> dict[str, object]:
    return {"name": name, "calls": await _read_then_wait("gated")}


@router.get("/gated-rows/{name}", name="gated-rows")
@cached(ttl=60)
async def gated_rows(name: str, tags: CacheTags) -> dict[str, object]:
    """Tagged by what it read, once it has read it (``row:<name>``)."""
    seen = await _read_then_wait("gated-rows")
    tags.append(f"row:{name}")
    return {"name": name, "calls": seen}


@router.get("/gated-swr", name="gated-swr")
@cached(ttl=0.2, tags=["gated"], stale_while_revalidate=60)
async def gated_swr() -> dict[str, object]:
    return {"calls": await _read_then_wait("gated-swr")}


@router.post("/invalidate")
async def invalidate(cache: ResponseCache, tag: str = "", route: str = "", path: str = "") -> dict[str, int]:
    """A writer: invalidate one tag, route name or path."""
    removed = await cache.invalidate(
        tags=[tag] if tag else [], routes=[route] if route else [], paths=[path] if path else []
    )
    return {"invalidated": removed}


@router.get("/falsy/{kind}")
@cached()
async def falsy(kind: str) -> object:
    calls[f"falsy-{kind}"] += 1
    return {"list": [], "zero": 0, "null": None}[kind]


@router.get("/slow/{name}")
@cached()
async def slow(name: str) -> dict[str, int]:
    calls["slow"] += 1
    await asyncio.sleep(0.3)
    return {"calls": calls["slow"]}


@router.get("/me")
@cached()
async def me(authorization: str | None = Header(None)) -> dict[str, str | None]:
    calls["me"] += 1
    return {"user": authorization}


@router.get("/short")
@cached(ttl=0.3, stale_while_revalidate=0)
async def short() -> dict[str, int]:
    calls["short"] += 1
    return {"calls": calls["short"]}


@router.get("/swr")
@cached(ttl=0.3, stale_while_revalidate=30)
async def swr() -> dict[str, int]:
    calls["swr"] += 1
    return {"calls": calls["swr"]}


@router.get("/status/{code}")
@cached()
async def status(code: int, response: Response) -> dict[str, int]:
    calls[f"status-{code}"] += 1
    response.status_code = code
    return {"code": code}


@router.get("/cookie")
@cached()
async def cookie(response: Response) -> dict[str, int]:
    calls["cookie"] += 1
    response.set_cookie("session", "abc")
    return {"calls": calls["cookie"]}


@router.get("/no-store")
@cached()
async def no_store(response: Response) -> dict[str, int]:
    calls["no-store"] += 1
    response.headers["cache-control"] = "no-store"
    return {"calls": calls["no-store"]}


@router.get("/by-settings/{x}", name="configured")
async def configured(x: int) -> dict[str, int]:
    calls["configured"] += 1
    return {"x": x, "calls": calls["configured"]}


@router.get("/search")
@cached()
async def search(q: str = "", page: int = 1) -> dict[str, object]:
    calls["search"] += 1
    return {"q": q, "page": page}


@router.get("/lang")
@cached()
async def lang(response: Response, accept_language: str | None = Header(None)) -> dict[str, object]:
    """Answers in the client's language (the first Accept-Language, as request.headers.get)."""
    calls["lang"] += 1
    response.headers["vary"] = "Accept-Language"
    return {"lang": accept_language, "calls": calls["lang"]}


@router.get("/vary-star")
@cached()
async def vary_star(response: Response) -> dict[str, int]:
    calls["vary-star"] += 1
    response.headers["vary"] = "*"
    return {"calls": calls["vary-star"]}


@router.get("/controlled/{name}")
@cached()
async def controlled(name: str, response: Response, control: str = "", expires: str = "") -> dict[str, int]:
    """Sends ``Cache-Control: <control>`` / ``Expires: <expires>`` as given."""
    calls[f"controlled-{name}"] += 1
    if control:
        response.headers["cache-control"] = control
    if expires:
        response.headers["expires"] = expires
    return {"calls": calls[f"controlled-{name}"]}


@router.get("/big/{item_id}")
@cached()
async def big(item_id: int) -> dict[str, object]:
    """A body compression compresses (well over minimum_size)."""
    calls["big"] += 1
    return {"id": item_id, "rows": [{"n": n, "text": "lorem ipsum dolor sit amet"} for n in range(100)]}


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="shop", after=("cache",))


@hookimpl
def register_routers() -> Sequence[APIRouter]:
    return [router]


@router.get("/boom")
@cached()
async def boom() -> None:
    calls["boom"] += 1
    raise RuntimeError("handler failed")
