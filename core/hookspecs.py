"""The hooks a fastplug plugin can implement (described, with examples, in ``HOOKS.md`` beside this file).

Hooks are synchronous (pluggy has no async hooks); one that needs async work returns
an async context manager or a coroutine and core awaits it. Core calls the
order-sensitive hooks (lifespan, middleware, routers) one plugin at a time in the
dependency order it computed, not in pluggy's registration order. A plugin
implements only the hooks it needs, with any subset of the arguments below.
Implement a hook another plugin defines with ``@hookimpl(optionalhook=True)`` so that
disabling that plugin is not an error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from fastplug.core.markers import hookspec

if TYPE_CHECKING:
    import click
    import pluggy
    from fastapi import APIRouter, FastAPI

    from fastplug.config.settings import Settings
    from fastplug.core.manager import Plugins
    from fastplug.core.services import Services
    from fastplug.core.specs import CheckMessage, HealthCheck, MiddlewareSpec, PluginInfo


@hookspec
def plugin_info() -> PluginInfo:  # type: ignore[empty-body]
    """Return the plugin's :class:`fastplug.core.PluginInfo`. Required.

    Fires once when the plugin is loaded, before settings are validated.
    """


@hookspec
def add_hookspecs(pm: pluggy.PluginManager) -> None:
    """Add this plugin's own hookspecs with ``pm.add_hookspecs(module)``.

    Fires right after every enabled plugin is registered, before hook names are
    checked, so other plugins' implementations of the new hooks validate.
    """


@hookspec
def check(settings: Settings) -> Sequence[CheckMessage] | Awaitable[Sequence[CheckMessage]] | None:
    """Return system check messages (a coroutine may test connectivity).

    Fires on ``manage.py check`` only, after settings validated, with no app running.
    """


@hookspec
def register_routers(settings: Settings) -> Sequence[APIRouter] | None:
    """Return routers to include. Fires once while the app is built."""


@hookspec
def register_middleware(settings: Settings) -> Sequence[MiddlewareSpec] | None:
    """Return pure-ASGI middleware specs. Fires once while the app is built; core
    passes them all to ``FastAPI(middleware=[...])``, outermost (lowest priority) first."""


@hookspec
def register_exception_handlers(
    settings: Settings,
) -> Mapping[type[BaseException] | int, Callable[..., Any]] | None:
    """Return exception class (or status code) -> handler. Fires once while the app is built."""


@hookspec
def lifespan(
    app: FastAPI, settings: Settings, services: Services
) -> AbstractAsyncContextManager[Mapping[str, Any] | None] | None:
    """Return an async context manager run for the server's lifetime.

    Entered at startup in dependency order under ``[lifespan] startup_timeout``,
    exited at shutdown in reverse order. What it yields (a mapping) is added to
    ``services`` and to the lifespan state, so handlers reach it through the typed
    dependencies the plugin exports (:func:`fastplug.core.service`), and plugins that
    start later find it in ``services``.
    """


@hookspec
def register_health_checks(settings: Settings) -> Sequence[HealthCheck] | None:
    """Return readiness checks, run concurrently by ``GET /health/ready``. Fires once
    while the app is built; the checks themselves run per readiness request."""


@hookspec
def register_commands() -> Sequence[click.Command] | None:
    """Return click commands added to ``manage.py``. Fires when the CLI starts, once settings and
    plugins loaded (if they do not, no plugin command is listed, and asking for one prints why);
    commands reach settings through ``fastplug.core.get_context().load()``."""


@hookspec
def app_created(app: FastAPI, settings: Settings) -> None:
    """The app is built (routes, middleware, handlers in place) and not yet serving."""


@hookspec
def serve_starting(settings: Settings, plugins: Plugins, workers: int) -> None:
    """``manage.py serve`` is about to start the server, in the serving process, before any
    worker is forked or the app is imported by one (e.g. set up a multiprocess directory)."""


@hookspec
def worker_exited(settings: Settings, pid: int) -> None:
    """A gunicorn worker process ``pid`` exited (``serve --workers N``); runs in the master."""
