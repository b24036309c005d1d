"""What each core hook must return, checked where core calls the hook: while the app is
built, at startup (``lifespan``), when the CLI starts (``register_commands``); never per request.

:data:`EXPECTED` maps a hook to a description of its result and a validator; a validator
returns ``None`` for a good result, else ``(what was got, hint)``. Hooks plugins define
themselves (``add_hookspecs``) are not checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from fastplug.config.errors import Problem
from fastplug.core.specs import CheckMessage, HealthCheck, MiddlewareSpec

Wrong = tuple[str, str | None]

ASYNC_CM_HINT = "decorate it with @contextlib.asynccontextmanager and return its call"
COROUTINE_HINT = (
    "a coroutine is not a context manager: make it an async generator that yields once, "
    "decorate that with @contextlib.asynccontextmanager and return its call"
)
INNER_CM_HINT = "the hook must be a plain def: return the call of an inner @contextlib.asynccontextmanager function"


@dataclass(frozen=True, slots=True)
class Expected:
    """A hook's expected result: ``what`` reads after "must return"; ``wrong`` validates."""

    what: str
    wrong: Callable[[Any], Wrong | None]


def type_name(value: object) -> str:
    """The bare class name of ``value`` (``APIRouter``, ``str``, ``async_generator``)."""
    return type(value).__name__


def _items_of(
    kind: type | tuple[type, ...], wrap_hint: str, item_hint: str | None = None
) -> Callable[[Any], Wrong | None]:
    """A validator for "a list of ``kind``"; a bare ``kind`` gets ``wrap_hint``."""

    def wrong(result: Any) -> Wrong | None:
        if isinstance(result, kind):
            return type_name(result), wrap_hint
        if not isinstance(result, Sequence) or isinstance(result, str | bytes):
            return type_name(result), None
        for index, item in enumerate(result):
            if not isinstance(item, kind):
                return f"a {type_name(result)} with {type_name(item)} at index {index}", item_hint
        return None

    return wrong


def _routers(result: Any) -> Wrong | None:
    from fastapi import APIRouter

    return _items_of(APIRouter, "return [router]")(result)


def _commands(result: Any) -> Wrong | None:
    import click

    return _items_of(click.Command, "return [command]", "decorate each with @click.command()")(result)


def _handlers(result: Any) -> Wrong | None:
    if not isinstance(result, Mapping):
        return type_name(result), "return {ExceptionClass: handler}"
    for key, handler in result.items():
        ok_key = isinstance(key, int) or (isinstance(key, type) and issubclass(key, BaseException))
        if not ok_key:
            return f"a {type_name(result)} with key of type {type_name(key)}", None
        if not callable(handler):
            return (
                f"a {type_name(result)} whose handler for {getattr(key, '__name__', key)} is {type_name(handler)}",
                None,
            )
    return None


def _lifespan(result: Any) -> Wrong | None:
    if isinstance(result, AbstractAsyncContextManager) or (
        hasattr(result, "__aenter__") and hasattr(result, "__aexit__")
    ):
        return None
    if inspect.isasyncgen(result):
        return type_name(result), ASYNC_CM_HINT
    if inspect.iscoroutine(result):
        result.close()  # never awaited: no RuntimeWarning
        return type_name(result), COROUTINE_HINT
    if callable(result):
        return type_name(result), "return the context manager itself (call the function)"
    return type_name(result), None


def _check(result: Any) -> Wrong | None:
    return None if inspect.isawaitable(result) else _items_of(CheckMessage, "return [message]")(result)


def _nothing(result: Any) -> Wrong | None:
    return None if result is None else (type_name(result), "core ignores the result: return nothing")


EXPECTED: dict[str, Expected] = {
    "register_routers": Expected("a list of APIRouter", _routers),
    "register_middleware": Expected("a list of MiddlewareSpec", _items_of(MiddlewareSpec, "return [spec]")),
    "register_exception_handlers": Expected("a mapping of exception class or status code to handler", _handlers),
    "register_health_checks": Expected("a list of HealthCheck", _items_of(HealthCheck, "return [check]")),
    "register_commands": Expected("a list of click commands", _commands),
    "lifespan": Expected("an async context manager", _lifespan),
    "check": Expected("a list of CheckMessage (or a coroutine returning one)", _check),
    "add_hookspecs": Expected("None", _nothing),
    "app_created": Expected("None", _nothing),
    "serve_starting": Expected("None", _nothing),
    "worker_exited": Expected("None", _nothing),
}


def wrong_result(hook: str, result: Any) -> tuple[str, str | None] | None:
    """``(detail, hint)`` when ``result`` is not what ``hook`` must return, else ``None``."""
    expected = EXPECTED.get(hook)
    if expected is None or result is None:
        return None
    found = expected.wrong(result)
    if found is None:
        return None
    got, hint = found
    return f"hook {hook} must return {expected.what}, got {got}", hint


def async_hook_problems(plugin: str, hooks: Mapping[str, Callable[..., Any]]) -> list[Problem]:
    """Hooks written ``async def`` (pluggy calls hooks synchronously): one problem each.

    ``check`` may be a coroutine function (core awaits its result).
    """
    problems = []
    for hook, function in hooks.items():
        if hook not in EXPECTED:
            continue
        if inspect.isasyncgenfunction(function):
            kind = "an async generator function"
            hint = "decorate it with @contextlib.asynccontextmanager (under @hookimpl)" if hook == "lifespan" else None
        elif inspect.iscoroutinefunction(function) and hook != "check":
            kind = "a coroutine function"
            hint = INNER_CM_HINT if hook == "lifespan" else "use a plain def"
        else:
            continue
        problems.append(
            Problem(
                "fastplug.E028", f"plugin '{plugin}': hook {hook} must return {EXPECTED[hook].what}, is {kind}", hint
            )
        )
    return problems


class _AppPlaceholder:
    """Stands for the inner ASGI app when checking middleware options at build time."""


def middleware_options_problem(plugin: str, spec: MiddlewareSpec) -> Problem | None:
    """A problem when ``spec.factory(app, **spec.options)`` would not bind (option names only, never values)."""
    try:
        signature = inspect.signature(spec.factory)
    except (TypeError, ValueError):  # no signature to check (a builtin): startup will tell
        return None
    try:
        signature.bind(_AppPlaceholder(), **dict(spec.options))
    except TypeError as exc:
        factory = getattr(spec.factory, "__qualname__", type_name(spec.factory))
        accepted = ", ".join(signature.parameters)
        return Problem(
            "fastplug.E044",
            f"plugin '{plugin}': middleware '{spec.name}' options do not fit its factory {factory}: {exc}",
            f"core calls {factory}(app, **options); it accepts ({accepted})",
        )
    return None
