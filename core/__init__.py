"""fastplug core: plugin manager, hookspecs, app factory, lifespan and CLI.

This module is the whole API a plugin author needs; plugins import ``fastplug.core``, never
its submodules::

    from fastplug.core import HealthCheck, MiddlewareSpec, PluginInfo, PluginSettings, Settings, hookimpl, service

What the built-in plugins offer each other and apps lives in their own public modules
(``fastplug.plugins.db.api``, ``fastplug.plugins.cache.api``, ``fastplug.plugins.tasks.api``,
``fastplug.plugins.redis.api``, ``fastplug.plugins.http.api``).
"""

if __name__ != "fastplug.core":  # imported by its folder name from a checkout: a second copy
    raise ImportError(
        "fastplug's 'core' folder is the package 'fastplug.core': import fastplug.core (and its modules as "
        "fastplug.core.<module>), not 'core'; a project may have a 'core' package of its own"
    )


from fastplug.config import FastplugError, PluginSettings, Problem, Settings, mask_secrets, mask_url, mask_url_password
from fastplug.core.access import LOOPBACK, LOOPBACK_ONLY, AccessRule, valid_token
from fastplug.core.encoding import negotiate, parse_accept_encoding
from fastplug.core.freshness import FRESH_READS
from fastplug.core.manager import LoadedPlugin, PluginHookError, Plugins, one_line
from fastplug.core.markers import hookimpl, hookspec
from fastplug.core.paging import CURSOR_PATTERN, INT32_MAX, decode_cursor, encode_cursor, page_of
from fastplug.core.runtime import Runtime
from fastplug.core.schemas import TOO_LARGE, UNAVAILABLE, ErrorOut, JsonInteger, UtcDatetime
from fastplug.core.serialize import JsonBytes, JsonSerializer, records, serializer, trusted
from fastplug.core.services import ServiceMissing, Services, service
from fastplug.core.specs import Answer, CheckError, CheckMessage, CheckWarning, HealthCheck, MiddlewareSpec, PluginInfo

# Names whose modules pull in more (the app factory, the CLI, distribution metadata): imported
# on first use, so that ``import fastplug.core`` stays light for plugins.
_LAZY = {
    "build_app": "fastplug.core.app",
    "create_app": "fastplug.core.app",
    "unavailable": "fastplug.core.app",
    "load": "fastplug.core.bootstrap",
    "CliContext": "fastplug.core.cli",
    "get_context": "fastplug.core.cli",
    "fastplug_version": "fastplug.core.discovery",
    "iter_routes": "fastplug.core.routes",
    "PluginStartupError": "fastplug.core.lifespan",
}

__all__ = [
    "CURSOR_PATTERN",
    "FRESH_READS",
    "INT32_MAX",
    "LOOPBACK",
    "LOOPBACK_ONLY",
    "TOO_LARGE",
    "UNAVAILABLE",
    "AccessRule",
    "Answer",
    "CheckError",
    "CheckMessage",
    "CheckWarning",
    "CliContext",
    "ErrorOut",
    "FastplugError",
    "HealthCheck",
    "JsonBytes",
    "JsonInteger",
    "JsonSerializer",
    "LoadedPlugin",
    "MiddlewareSpec",
    "PluginHookError",
    "PluginInfo",
    "PluginSettings",
    "PluginStartupError",
    "Plugins",
    "Problem",
    "Runtime",
    "ServiceMissing",
    "Services",
    "Settings",
    "UtcDatetime",
    "build_app",
    "create_app",
    "decode_cursor",
    "encode_cursor",
    "fastplug_version",
    "get_context",
    "hookimpl",
    "hookspec",
    "iter_routes",
    "load",
    "mask_secrets",
    "mask_url",
    "mask_url_password",
    "negotiate",
    "one_line",
    "page_of",
    "parse_accept_encoding",
    "records",
    "serializer",
    "service",
    "trusted",
    "unavailable",
    "valid_token",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastplug.core' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
