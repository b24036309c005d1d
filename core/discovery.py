"""Find plugins without importing them: built-ins by directory, others by entry point."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import pkgutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fastplug.config.errors import Problem
from fastplug.config.settings import plugin_name

ENTRY_POINT_GROUP = "fastplug"
BUILTIN_PACKAGE = "fastplug.plugins"


@dataclass(frozen=True, slots=True)
class PluginSource:
    """Where a plugin lives. Knowing this imports nothing of the plugin."""

    name: str
    target: str  # "fastplug.plugins.health" or an entry point value "pkg.mod:obj"
    builtin: bool
    distribution: str | None = None
    version: str | None = None
    entry_point: md.EntryPoint | None = None
    obj: object | None = None  # a plugin object passed in directly (tests, embedding)
    path: str | None = None  # a local plugin's file, found from the project directory

    @property
    def origin(self) -> str:
        """'built-in', 'local ...' or 'distribution-name version'."""
        if self.builtin:
            return "built-in"
        if self.path is not None:
            return f"local {self.target}"
        if self.obj is not None:
            return "local"
        return f"{self.distribution or '?'} {self.version or ''}".strip()


def fastplug_version() -> str:
    """The installed fastplug version (or 0+unknown in a bare checkout)."""
    try:
        return md.version("fastplug")
    except md.PackageNotFoundError:
        return "0+unknown"


def _builtins() -> list[PluginSource]:
    import fastplug.plugins

    version = fastplug_version()
    return [
        PluginSource(info.name, f"{BUILTIN_PACKAGE}.{info.name}", True, "fastplug", version)
        for info in pkgutil.iter_modules(fastplug.plugins.__path__)
        if info.ispkg and not info.name.startswith("_")
    ]


def _entry_points() -> list[PluginSource]:
    seen: set[tuple[str, str, str | None]] = set()
    found: list[PluginSource] = []
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.metadata["Name"] if ep.dist is not None else None
        key = (ep.name, ep.value, dist)
        if key in seen:  # the same distribution reachable twice on sys.path
            continue
        seen.add(key)
        version = ep.dist.version if ep.dist is not None else None
        found.append(PluginSource(ep.name, ep.value, False, dist, version, ep))
    return found


def discover(
    extra: Mapping[str, object] | None = None,
) -> tuple[dict[str, PluginSource], dict[str, list[PluginSource]]]:
    """Every known plugin by name, and the names claimed by more than one source.

    ``extra`` maps names to plugin objects given directly (tests, embedding apps).
    """
    local = [PluginSource(name, repr(obj), False, obj=obj) for name, obj in (extra or {}).items()]
    by_name: dict[str, list[PluginSource]] = {}
    for source in (*_builtins(), *_entry_points(), *local):
        by_name.setdefault(source.name, []).append(source)
    unique = {name: sources[0] for name, sources in by_name.items()}
    clashes = {name: sources for name, sources in by_name.items() if len(sources) > 1}
    return unique, clashes


def local_source(entry: str, project_dir: Path) -> PluginSource | None:
    """A local plugin: ``entry`` is a module path importable from ``project_dir`` (the settings
    file's directory, put first on ``sys.path`` as Django's ``manage.py`` does), e.g.
    ``"app.plugins.blog"`` (named ``blog``) or ``"notes"``. ``None`` when there is no such module.

    Finding it imports the packages above the module (``app.plugins``), not the module itself.
    """
    if not entry or not all(part.isidentifier() for part in entry.split(".")):
        return None
    where = str(project_dir)
    if where not in sys.path:
        sys.path.insert(0, where)
        importlib.invalidate_caches()
    try:
        spec = importlib.util.find_spec(entry)
    except (ImportError, ValueError):  # a parent package is missing or is a module
        return None
    if spec is None:
        return None
    origin = spec.origin
    if origin in (None, "namespace"):  # a namespace package: where its folder is
        origin = next(iter(spec.submodule_search_locations or [str(project_dir)]))
    return PluginSource(plugin_name(entry), entry, False, path=origin)


def clash_problem(name: str, sources: list[PluginSource]) -> Problem:
    """The error for two plugins sharing one name."""
    where = " and ".join(s.origin for s in sources)
    return Problem(
        "fastplug.E021",
        f"two plugins are named '{name}': {where}",
        "uninstall one of the distributions",
    )
