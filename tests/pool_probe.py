"""A plugin whose routes use the shared Redis and HTTP clients (for the pooling tests)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.http.api import HttpClient
from fastplug.plugins.redis.api import RedisClient

router = APIRouter()


@router.post("/kv/{key}")
async def put(key: str, value: str, redis: RedisClient) -> dict[str, int]:
    await redis.set(key, value, ex=60)
    return {"client": id(redis)}


@router.get("/kv/{key}")
async def get(key: str, redis: RedisClient) -> dict[str, str | None]:
    value = await redis.get(key)
    return {"value": value.decode() if value is not None else None}


@router.get("/upstream")
async def upstream(url: str, http: HttpClient) -> dict[str, object]:
    response = await http.get(url)
    return {"client": id(http), "upstream": response.json()}


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="probe", after=("redis", "http"))


@hookimpl
def register_routers() -> Sequence[APIRouter]:
    return [router]
