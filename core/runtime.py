"""What core keeps about one built app, reachable as ``app.state.fastplug``."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.routing import BaseRoute

from config.settings import Settings
from core.manager import Plugins
from core.services import Services
from core.specs import HealthCheck, MiddlewareSpec


@dataclass(slots=True)
class Runtime:
    """Settings, plugins and everything core collected from their hooks at build time."""

    settings: Settings
    plugins: Plugins
    services: Services = field(default_factory=Services)
    middleware: list[tuple[str, MiddlewareSpec]] = field(default_factory=list)
    health_checks: list[tuple[str, HealthCheck]] = field(default_factory=list)
    routes: list[tuple[str, BaseRoute]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    startup_error: str | None = None
