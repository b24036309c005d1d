"""The fastplug benchmark targets: the real app from ``$FASTPLUG_SETTINGS``, plus a ``bench``
plugin that declares ``GET /bench/json20k`` (and, when ``[bench] starlette_gzip = true``,
Starlette's ``GZipMiddleware`` in the compression band, for a like-for-like comparison).

Run: ``uvicorn --app-dir benchmarks/baselines --factory fastplug_app:create``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from payload import BODY, PATH

from config.models import PluginSettings
from config.settings import Settings
from core.app import create_app
from core.asgi import freeze
from core.markers import hookimpl
from core.specs import MiddlewareSpec, PluginInfo


class BenchSettings(PluginSettings):
    """``[bench]``: swap fastplug's compression for Starlette's."""

    starlette_gzip: bool = False


class BenchPlugin:
    """The benchmark's own routes (and optional Starlette gzip)."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="bench", settings=BenchSettings)

    @hookimpl
    def register_routers(self) -> Sequence[APIRouter]:
        router = APIRouter()

        @router.get(PATH)
        async def json20k() -> Response:
            return Response(BODY, media_type="application/json")

        return [router]

    @hookimpl
    def register_middleware(self, settings: Settings) -> Sequence[MiddlewareSpec]:
        if not settings.section("bench", BenchSettings).starlette_gzip:
            return []
        from starlette.middleware.gzip import GZipMiddleware

        return [MiddlewareSpec("starlette_gzip", GZipMiddleware, {"minimum_size": 1000}, priority=200)]


def create() -> FastAPI:
    """The app as ``core.asgi.create_app_from_env`` builds it, with the bench plugin."""
    return freeze(create_app(extra_plugins={"bench": BenchPlugin()}))
