"""Where a stuck event loop is: the route it is serving and the app's frames, from a stack.

The watchdog thread takes the loop thread's innermost frame (``sys._current_frames()``) while
the loop is stuck, and :class:`StackReader` turns it into a :class:`Stall`: the route (found
by the endpoint's code object among the frames, else by the ASGI ``scope`` a middleware frame
holds) and the frames that are the app's or a plugin's code, innermost last. Everything the
reader needs (which code objects are endpoints, which folders are the app's) is computed once
when the lifespan starts.
"""

from __future__ import annotations

import inspect
import linecache
import os
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from fastplug.core import iter_routes

NO_ROUTE = ("", "(none)")
"""``(method, route)`` of a stall outside any request (startup, a background task)."""
UNMATCHED = "(unmatched)"
MAX_FRAMES = 300  # how far out a stack is walked


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a captured stack."""

    file: str
    line: int
    function: str

    def source(self) -> str:
        """The source line, stripped (empty when the file cannot be read)."""
        return linecache.getline(self.file, self.line).strip()


@dataclass(frozen=True, slots=True)
class Stall:
    """What the loop thread was running while the loop was stuck."""

    method: str
    route: str
    frames: tuple[Frame, ...]  # app and plugin frames, outermost first
    innermost: Frame | None  # the innermost Python frame, whoever's code it is

    @property
    def label(self) -> str:
        """``"GET /users/{user_id}"``, or ``"(none)"`` outside a request."""
        return f"{self.method} {self.route}" if self.method else self.route

    def format(self, limit: int) -> str:
        """The frames as a traceback's lines (the innermost ``limit`` app frames)."""
        lines = []
        shown = self.frames[-limit:]
        for frame in shown:
            lines.append(f'  File "{frame.file}", line {frame.line}, in {frame.function}')
            if source := frame.source():
                lines.append(f"    {source}")
        inner = self.innermost
        if inner is not None and (not shown or inner != shown[-1]):
            lines.append(f'  blocked in: File "{inner.file}", line {inner.line}, in {inner.function}')
        return "\n".join(lines) if lines else "  (no Python frame)"


def _library_dirs() -> tuple[str, ...]:
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    dirs = {os.path.realpath(p) for name in names if (p := sysconfig.get_paths().get(name))}
    return tuple(sorted(d.rstrip(os.sep) + os.sep for d in dirs))


def _endpoint_code(endpoint: Any) -> CodeType | None:
    fn = inspect.unwrap(endpoint) if callable(endpoint) else None
    code = getattr(fn, "__code__", None)
    if code is None and fn is not None:  # a callable object: its __call__
        code = getattr(vars(type(fn)).get("__call__"), "__code__", None)
    return code


class StackReader:
    """Turns a captured frame into a :class:`Stall`, with what the routes told it at startup."""

    def __init__(self, routes: Iterable[Any], plugin_modules: Iterable[Any], exclude: Iterable[str] = ()) -> None:
        libraries = _library_dirs()
        plugin_dirs = {os.path.dirname(os.path.realpath(f)) + os.sep for m in plugin_modules if (f := _file_of(m))}
        excluded = tuple(os.path.realpath(e).rstrip(os.sep) + os.sep for e in exclude)
        self.endpoints: dict[CodeType, tuple[str, str]] = {}
        app_dirs: set[str] = {os.path.realpath(os.getcwd()) + os.sep}
        for row in iter_routes(list(routes)):  # included routers expanded, paths with their prefix
            code = _endpoint_code(getattr(row.original, "endpoint", None))
            path = row.path
            if code is None or not path:
                continue
            methods = [m for m in row.methods if m != "HEAD"]
            method = (methods[0] if len(methods) == 1 else "|".join(methods)) if methods else "WS"
            # a function serving two routes is named by the scope a frame holds instead
            self.endpoints[code] = ("", "") if code in self.endpoints else (method, path)
            app_dirs.add(os.path.dirname(os.path.realpath(code.co_filename)) + os.sep)
        self.app_roots = tuple(sorted(d for d in app_dirs if not d.startswith(libraries)))
        self.plugin_roots = tuple(sorted(plugin_dirs))
        self.libraries = libraries
        self.excluded = excluded
        self._is_app: dict[str, bool] = {}

    def is_app_file(self, file: str) -> bool:
        """Whether ``file`` is a plugin's code, or the app's (under its folders, not a library:
        a virtualenv inside the project is not the app); memoised by file name."""
        known = self._is_app.get(file)
        if known is None:
            real = os.path.realpath(file)
            ours = real.startswith(self.plugin_roots) or (
                real.startswith(self.app_roots) and not real.startswith(self.libraries)
            )
            known = ours and not file.startswith("<") and not real.startswith(self.excluded)
            self._is_app[file] = known
        return known

    def read(self, frame: FrameType | None) -> Stall:
        """The stall ``frame`` (the loop thread's innermost frame) shows; call it at once."""
        chain: list[FrameType] = []
        while frame is not None and len(chain) < MAX_FRAMES:
            chain.append(frame)
            frame = frame.f_back
        method, route = self._route(chain)
        app_frames = tuple(
            Frame(f.f_code.co_filename, f.f_lineno, f.f_code.co_name)
            for f in reversed(chain)
            if self.is_app_file(f.f_code.co_filename)
        )
        inner = chain[0] if chain else None
        innermost = Frame(inner.f_code.co_filename, inner.f_lineno, inner.f_code.co_name) if inner else None
        return Stall(method, route, app_frames, innermost)

    def _route(self, chain: list[FrameType]) -> tuple[str, str]:
        for f in chain:  # innermost first: the endpoint itself
            found = self.endpoints.get(f.f_code)
            if found is not None and found[1]:
                return found
        for f in chain:  # blocked in a middleware or dependency: the request's scope
            scope = _scope_of(f)
            if scope is not None:
                route = scope.get("route")
                path = getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED
                return str(scope.get("method", "")) or "WS", path
        return NO_ROUTE


def _scope_of(frame: FrameType) -> dict[str, Any] | None:
    names = frame.f_code.co_varnames
    if "scope" not in names:  # read locals only of frames that have such a variable
        return None
    try:
        scope = frame.f_locals.get("scope")
    except Exception:  # a frame finishing under us
        return None
    if isinstance(scope, dict) and scope.get("type") in ("http", "websocket"):
        return scope
    return None


def _file_of(module: Any) -> str | None:
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) else None
