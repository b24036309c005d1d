"""fastplug core: plugin manager, hookspecs, app factory, lifespan and CLI.

The public API for plugin authors::

    from core import hookimpl, PluginInfo, MiddlewareSpec, HealthCheck, service
    from config import PluginSettings
"""

from core.markers import hookimpl, hookspec
from core.services import ServiceMissing, Services, service
from core.specs import CheckError, CheckMessage, CheckWarning, HealthCheck, MiddlewareSpec, PluginInfo

__all__ = [
    "CheckError",
    "CheckMessage",
    "CheckWarning",
    "HealthCheck",
    "MiddlewareSpec",
    "PluginInfo",
    "ServiceMissing",
    "Services",
    "create_app",
    "hookimpl",
    "hookspec",
    "service",
]


def __getattr__(name: str) -> object:
    # create_app pulls in FastAPI app building; keep `import core` light for plugins.
    if name == "create_app":
        from core.app import create_app

        return create_app
    raise AttributeError(name)
