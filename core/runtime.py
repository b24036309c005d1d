"""What core keeps about one built app, reachable as ``app.state.fastplug``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute

from fastplug.config.settings import Settings
from fastplug.core.manager import Plugins
from fastplug.core.services import Services
from fastplug.core.specs import HealthCheck, MiddlewareSpec


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
    serving: bool = False  # every lifespan has started and the app is serving (until shutdown)
    serves_http: bool = True
    """False where the lifespans run only for a worker's services (``manage.py worker``'s
    processes): plugins then open no listening socket of their own (the metrics port)."""

    @staticmethod
    def of(app: Any) -> Runtime:
        """The runtime of a fastplug ``app`` (e.g. to call a plugin-defined hook:
        ``Runtime.of(app).plugins.call_each("register_metrics", registry=r)``)."""
        runtime = getattr(app.state, "fastplug", None)
        if not isinstance(runtime, Runtime):
            raise LookupError("not a fastplug app (built by core.app.create_app)")
        return runtime
