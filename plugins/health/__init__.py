"""health plugin: ``GET /health/live`` and ``GET /health/ready`` (check details for the operator only)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from fastplug.config import Settings
from fastplug.core import PluginInfo, Runtime, hookimpl
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


@hookimpl
def app_created(app: FastAPI, settings: Settings) -> None:
    """``[health] critical`` may name only checks that exist (an error at build and on ``manage.py check``)."""
    from fastplug.plugins.health.routes import check_name, unknown_names

    checks = Runtime.of(app).health_checks
    unknown = unknown_names(checks, settings.section("health", HealthSettings))
    if unknown:
        known = ", ".join(check_name(plugin, check) for plugin, check in checks) or "(none)"
        names = ", ".join(f"'{name}'" for name in unknown)
        raise ValueError(f"{settings.path.name} [health] critical: unknown health check {names} (known: {known})")
