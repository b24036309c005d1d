"""health plugin: ``GET /health/live`` and ``GET /health/ready``."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from fastplug.config import Settings
from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.health.settings import HealthSettings


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="health",
        settings=HealthSettings,
        description="liveness and readiness endpoints from every plugin's health checks",
    )


@hookimpl
def register_routers(settings: Settings) -> Sequence[APIRouter]:
    from fastplug.plugins.health.routes import build_router

    return [build_router(settings.section("health", HealthSettings))]
