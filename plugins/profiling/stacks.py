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

from starlette.routing import compile_path

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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the watchdog copies from the loop thread's stack, with no system call (the loop
    thread runs again as soon as the watchdog gives the GIL back): the code and line of each
    frame, innermost first, and the request the frames serve."""

    frames: tuple[tuple[CodeType, int], ...]
    method: str  # "" outside a request
    path: str  # the request path relative to the app's root path
    route: Any  # scope["route"] of the innermost scope that has one, else None
    prefix: str  # the mounts' part of root_path (a sub-application's route is under it)
    endpoint: tuple[str, str] | None  # (method, template) of an endpoint among the frames


class StackReader:
    """Turns a captured frame into a :class:`Stall`: :meth:`snapshot` in the watchdog, at once,
    then :meth:`stall` in the loop. What the routes told it is computed at startup."""

    def __init__(self, routes: Iterable[Any], plugin_modules: Iterable[Any], exclude: Iterable[str] = ()) -> None:
        libraries = _library_dirs()
        plugin_dirs: set[str] = set()
        plugin_files: set[str] = set()
        for module in plugin_modules:
            file = _file_of(module)
            if file is None:
                continue
            if getattr(module, "__path__", None) is not None:  # a package: its folder
                plugin_dirs.add(os.path.dirname(os.path.realpath(file)) + os.sep)
            else:  # one module (perhaps in site-packages): that file only
                plugin_files.add(os.path.realpath(file))
        excluded = tuple(os.path.realpath(e).rstrip(os.sep) + os.sep for e in exclude)
        self.endpoints: dict[CodeType, tuple[str, str]] = {}
        self.rows: list[tuple[frozenset[str], Any, str]] = []  # (methods, path regex, template)
        app_dirs: set[str] = {os.path.realpath(os.getcwd()) + os.sep}
        for row in iter_routes(list(routes)):  # included routers expanded, paths with their prefix
            if row.path and row.path != "?":
                self.rows.append((frozenset(row.methods), compile_path(row.path)[0], row.path))
            code = _endpoint_code(getattr(row.original, "endpoint", None))
            if code is None or not row.path:
                continue
            methods = [m for m in row.methods if m != "HEAD"]
            method = (methods[0] if len(methods) == 1 else "|".join(methods)) if methods else "WS"
            # a function serving two routes is named by the request's scope instead
            self.endpoints[code] = ("", "") if code in self.endpoints else (method, row.path)
            app_dirs.add(os.path.dirname(os.path.realpath(code.co_filename)) + os.sep)
        self.app_roots = tuple(sorted(d for d in app_dirs if not d.startswith(libraries)))
        self.plugin_roots = tuple(sorted(plugin_dirs))
        self.plugin_files = frozenset(plugin_files)
        self.libraries = libraries
        self.excluded = excluded
        self._is_app: dict[str, bool] = {}

    def is_app_file(self, file: str) -> bool:
        """Whether ``file`` is a plugin's code, or the app's (under its folders, not a library:
        a virtualenv inside the project is not the app); memoised by file name. Runs in the loop."""
        known = self._is_app.get(file)
        if known is None:
            real = os.path.realpath(file)
            ours = (
                real in self.plugin_files
                or real.startswith(self.plugin_roots)
                or (real.startswith(self.app_roots) and not real.startswith(self.libraries))
            )
            known = ours and not file.startswith("<") and not real.startswith(self.excluded)
            if len(self._is_app) < 100_000:
                self._is_app[file] = known
        return known

    def snapshot(self, frame: FrameType | None) -> Snapshot:
        """Copy what ``frame`` (the loop thread's innermost frame) shows; in the watchdog, at once."""
        chain: list[FrameType] = []
        while frame is not None and len(chain) < MAX_FRAMES:
            chain.append(frame)
            frame = frame.f_back
        frames = tuple((f.f_code, f.f_lineno) for f in chain)
        scopes = [scope for f in chain if (scope := _scope_of(f)) is not None]  # innermost first
        endpoint = next((e for code, _ in frames if (e := self.endpoints.get(code)) is not None and e[1]), None)
        if not scopes:
            return Snapshot(frames, "", "", None, "", endpoint)
        inner, outer = scopes[0], scopes[-1]
        routed = next((scope for scope in scopes if scope.get("route") is not None), None)
        # a mount's part of the path: Starlette keeps the app's own root path in app_root_path
        root = str((routed or inner).get("root_path", ""))
        base = str((routed or inner).get("app_root_path", outer.get("root_path", "")))
        path = str(outer.get("path", ""))
        method = str(inner.get("method", "")) if inner.get("type") == "http" else "WS"
        return Snapshot(
            frames,
            method,
            path[len(base) :] if path.startswith(base) else path,
            routed.get("route") if routed is not None else None,
            root[len(base) :] if root.startswith(base) else "",
            endpoint,
        )

    def stall(self, snap: Snapshot) -> Stall:
        """The :class:`Stall` a snapshot shows (file checks run here, in the loop)."""
        method, route = self._route(snap)
        app_frames = tuple(
            Frame(code.co_filename, line, code.co_name)
            for code, line in reversed(snap.frames)
            if self.is_app_file(code.co_filename)
        )
        innermost = (
            Frame(snap.frames[0][0].co_filename, snap.frames[0][1], snap.frames[0][0].co_name) if snap.frames else None
        )
        return Stall(method, route, app_frames, innermost)

    def read(self, frame: FrameType | None) -> Stall:
        """:meth:`snapshot` then :meth:`stall` (for a frame of the calling thread)."""
        return self.stall(self.snapshot(frame))

    def _route(self, snap: Snapshot) -> tuple[str, str]:
        if not snap.method:  # outside any request
            return snap.endpoint or NO_ROUTE
        method = snap.method if snap.method in METHODS else "OTHER"
        route = snap.route
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if template is not None:  # the request's own route: authoritative
            return method, snap.prefix + template
        for methods, regex, path in self.rows:  # not routed yet: blocked in a middleware
            if (method in methods or not methods) and regex.match(snap.path):
                return method, path
        return method, UNMATCHED


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "WS"})
"""Method labels kept as they are; any other is ``OTHER`` (a label value a client cannot grow)."""


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
