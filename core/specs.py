"""What plugins return from hooks: plain, typed declarations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fastplug.config.models import EmptySettings, PluginSettings
from fastplug.core.services import Services

Header = tuple[bytes, bytes]
Answer = tuple[int, Sequence[Header], bytes]
"""A complete response given without awaiting: status, headers, body (see ``answer_now``)."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A plugin's identity, returned by its ``plugin_info`` hook.

    ``requires`` names plugins that must be enabled and start first; ``after`` only
    orders (when those plugins are enabled); ``settings`` validates ``[<name>]``.
    """

    name: str
    settings: type[PluginSettings] = EmptySettings
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    description: str = ""
    version: str | None = None


@dataclass(frozen=True, slots=True)
class MiddlewareSpec:
    """One pure-ASGI middleware: ``factory(app, **options)``.

    Lower ``priority`` sits further out (runs first on the request). Suggested bands:
    10 security (hosts, CORS, headers), 100 timing/metrics, 120 rate limits, 150 cache,
    200 compression. ``[middleware] order`` in settings, by ``name``, overrides priorities.

    ``edge=True`` puts the middleware in front of FastAPI itself, before its per-request
    entry work (about 6.5 us here) and its error handling: for middleware that answers
    many requests on its own (a cache hit). Only a leading run of edge middleware in the
    final order is placed there; an edge middleware must not let its own errors escape.

    An edge middleware may also define ``answer_now(scope) -> Answer | None``: the whole
    answer to a request it can finish without awaiting anything (a fresh memory-cache hit),
    else None, having changed nothing the request's normal run would see. One that only wraps
    (metrics) asks the one inside and adds what it adds. The protocol writes the headers as
    they are (valid names and values only: the cache stores no others). When every edge middleware defines
    it, fastplug's HTTP protocol asks the outermost for each plain GET or HEAD before it makes
    the request's task and ASGI cycle, and writes the answer itself (``[server]
    protocol_answers``); any None goes through the app as usual.
    """

    name: str
    factory: Callable[..., Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 500
    edge: bool = False


HealthCheckFunc = Callable[[Services], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A readiness check: ``await check(services)`` passes unless it raises.

    What it returns (a dict, a string) is shown as the check's detail on
    ``/health/ready``. ``timeout`` may be shorter than the health plugin's budget
    (``[health] timeout``), never longer: every check is cut at the budget. A failing
    ``critical`` check makes ``/health/ready`` 503; a failing non-critical one only
    reports the app degraded (200): use ``critical=False`` for a dependency the app
    keeps serving without. ``[health] critical`` overrides it by the check's name.
    """

    name: str
    check: HealthCheckFunc
    timeout: float | None = None
    critical: bool = True


Level = Literal["critical", "error", "warning", "info", "debug"]


@dataclass(frozen=True, slots=True)
class CheckMessage:
    """A Django-style system check message (``manage.py check``)."""

    level: Level
    msg: str
    id: str
    hint: str | None = None
    obj: str | None = None

    @property
    def is_serious(self) -> bool:
        """Errors and critical messages make ``check`` exit 1."""
        return self.level in ("critical", "error")

    def __str__(self) -> str:
        head = f"{self.obj}: " if self.obj else "?: "
        text = f"{head}({self.id}) {self.msg}"
        return f"{text}\n\tHINT: {self.hint}" if self.hint else text


def CheckError(msg: str, id: str, hint: str | None = None, obj: str | None = None) -> CheckMessage:  # noqa: N802
    """An error: ``manage.py check`` fails."""
    return CheckMessage("error", msg, id, hint, obj)


def CheckWarning(msg: str, id: str, hint: str | None = None, obj: str | None = None) -> CheckMessage:  # noqa: N802
    """A warning: shown, but ``check`` still passes."""
    return CheckMessage("warning", msg, id, hint, obj)
