"""The fastplug benchmark targets: the real app from ``$FASTPLUG_SETTINGS``, plus a ``bench``
plugin that declares ``GET /bench/json20k`` (and, when ``[bench] starlette_gzip = true``,
Starlette's ``GZipMiddleware`` in the compression band, for a like-for-like comparison),
``GET /bench/cached`` (marked ``@cached``: a hit when the cache plugin is on), with the
db plugin ``GET /bench/row/{id}`` read as ``[bench] row`` says, and ``GET /bench/list20k``
(issue 7): the 20 KB page serialized per request through ``core.serialize``, from
prebuilt ``Page`` models (``[bench] list20k = "models"``) or from the dicts through a
``TypedDict`` adapter (``"dicts"``).

Run: ``uvicorn --app-dir benchmarks/baselines --factory fastplug_app:create``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import hot
from bench_data import CACHED_PATH, ITEM
from domain import LIST_PATH, Page, PageDict, page_dict
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import Response
from payload import BODY, PATH
from pydantic import BaseModel, ConfigDict
from querycount import maybe_counted
from sqlalchemy.orm import Mapped, mapped_column

from fastplug.config.models import PluginSettings
from fastplug.config.settings import Settings
from fastplug.core.app import create_app
from fastplug.core.asgi import freeze
from fastplug.core.markers import hookimpl
from fastplug.core.serialize import JsonBytes, serializer, trusted
from fastplug.core.specs import MiddlewareSpec, PluginInfo
from fastplug.plugins.cache.api import cached
from fastplug.plugins.db.api import Base, DbReadSession, DbSession, RawPool


class BenchSettings(PluginSettings):
    """``[bench]``: swap fastplug's compression for Starlette's; how ``/bench/row`` reads."""

    starlette_gzip: bool = False
    row: Literal["orm", "read", "raw"] = "orm"
    list20k: Literal["models", "dicts"] = "models"
    hot: bool = False  # issue 12's routes (hot.py)


class BenchItem(Base):
    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    price: Mapped[float]
    in_stock: Mapped[bool]


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    price: float
    in_stock: bool


class CachedItem(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


def db_router(mode: str) -> APIRouter:
    """``GET /bench/row/{id}`` through the ORM session, the read-only session or the raw pool."""
    router = APIRouter()
    if mode == "raw":

        @router.get("/bench/row/{item_id}")
        async def raw_row(item_id: int, pool: RawPool) -> dict[str, Any]:
            # the handler bare FastAPI runs, on fastplug's raw pool dependency
            record = await pool.fetchrow("SELECT id, name, price, in_stock FROM bench_items WHERE id = $1", item_id)
            return dict(record)

    elif mode == "read":

        @router.get("/bench/row/{item_id}")
        async def read_row(item_id: int, session: DbReadSession) -> ItemOut:
            return ItemOut.model_validate(await session.get(BenchItem, item_id))

    else:

        @router.get("/bench/row/{item_id}")
        async def orm_row(item_id: int, session: DbSession) -> ItemOut:
            return ItemOut.model_validate(await session.get(BenchItem, item_id))

    return router


def hot_router(cache: bool) -> APIRouter:
    """Issue 12's routes (``hot.py``), the handlers bare FastAPI and Litestar run, on the
    raw pool dependency; ``/cached/users/{id}`` is ``@cached`` (a hit once warmed)."""
    router = APIRouter()

    @router.get("/hello", response_model=hot.Hello)
    async def hello() -> dict[str, Any]:
        return hot.HELLO

    @router.get("/users/{user_id}", response_model=hot.User)
    async def get_user(user_id: int, pool: RawPool) -> dict[str, Any]:
        record = await pool.fetchrow(hot.USER_SQL, user_id)
        if record is None:
            raise HTTPException(404, "user not found")
        return dict(record)

    @router.get("/big", response_model=list[hot.Item])
    async def big() -> list[dict[str, Any]]:
        return hot.BIG

    @router.get("/big/trusted", response_model=list[hot.Item])
    async def big_trusted() -> JsonBytes:
        return trusted(hot.BIG)  # the documented way to skip validation

    if cache:

        @router.get("/cached/users/{user_id}", response_model=hot.User)
        @cached(ttl=3600)
        async def cached_user(user_id: int, pool: RawPool) -> dict[str, Any]:
            record = await pool.fetchrow(hot.USER_SQL, user_id)
            if record is None:
                raise HTTPException(404, "user not found")
            return dict(record)

    return router


def list_router(mode: str) -> APIRouter:
    """``GET /bench/list20k`` through ``core.serialize``: dumped per request, never cached."""
    router = APIRouter()
    if mode == "dicts":
        data, as_dicts = page_dict(), serializer(PageDict)

        @router.get(LIST_PATH, response_model=Page)
        async def list_dicts() -> JsonBytes:
            return as_dicts.response(data)

    else:
        page, as_models = Page.model_validate(page_dict()), serializer(Page)

        @router.get(LIST_PATH, response_model=Page)
        async def list_models() -> JsonBytes:
            return as_models.response(page)

    return router


class BenchPlugin:
    """The benchmark's own routes (and optional Starlette gzip)."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="bench", settings=BenchSettings)

    @hookimpl
    def register_routers(self, settings: Settings) -> Sequence[APIRouter]:
        router = APIRouter()

        @router.get(PATH)
        async def json20k() -> Response:
            return Response(BODY, media_type="application/json")

        @router.get(CACHED_PATH)
        @cached(ttl=600, tags=["bench"])
        async def cached_item() -> CachedItem:
            return CachedItem.model_validate(ITEM)

        routers = [router, list_router(settings.section("bench", BenchSettings).list20k)]
        bench = settings.section("bench", BenchSettings)
        if bench.hot:
            routers.append(hot_router("cache" in settings.plugins))
        elif "db" in settings.plugins:
            routers.append(db_router(bench.row))
        return routers

    @hookimpl
    def register_middleware(self, settings: Settings) -> Sequence[MiddlewareSpec]:
        if not settings.section("bench", BenchSettings).starlette_gzip:
            return []
        from starlette.middleware.gzip import GZipMiddleware

        return [MiddlewareSpec("starlette_gzip", GZipMiddleware, {"minimum_size": 1000}, priority=200)]


def create() -> FastAPI:
    """The app as ``core.asgi.create_app_from_env`` builds it, with the bench plugin."""
    return maybe_counted(freeze(create_app(extra_plugins={"bench": BenchPlugin()})))
