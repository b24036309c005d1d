"""Add an entry to ``plugins`` in ``[default]`` of a settings file, keeping its comments and layout."""

from __future__ import annotations

from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Array, Table

from fastplug.config.errors import FastplugError, Problem
from fastplug.config.settings import plugin_name


def _parse(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except TOMLKitError as exc:
        hint = f"fix the syntax in {path}"
        raise FastplugError([Problem("fastplug.E003", f"{path.name}: invalid TOML: {exc}", hint)]) from None


def listed_plugins(path: Path) -> list[str]:
    """The entries of ``plugins`` in ``[default]`` (empty when there is none)."""
    listed = _parse(path).get("default", {}).get("plugins", [])
    if not isinstance(listed, list):
        raise FastplugError([Problem("fastplug.E064", f"{path.name} [default] plugins is not a list")])
    return [str(entry) for entry in listed]


def add_plugin(path: Path, entry: str) -> list[str]:
    """Append ``entry`` to ``[default] plugins`` in ``path``; return notes for the user.

    Raises :class:`FastplugError` when it is listed already or ``plugins`` is not a list.
    """
    document = _parse(path)
    default = document.get("default")
    if default is None:
        default = tomlkit.table()
        document.add("default", default)
    plugins = default.get("plugins")
    if plugins is None:
        plugins = tomlkit.array()
        default["plugins"] = plugins
    if not isinstance(plugins, Array):
        raise FastplugError([Problem("fastplug.E064", f"{path.name} [default] plugins is not a list")])
    if entry in plugins:
        raise FastplugError([Problem("fastplug.E065", f"{path.name}: '{entry}' is already in [default] plugins")])
    plugins.append(entry)
    path.write_text(tomlkit.dumps(document), encoding="utf-8")
    notes = []
    for env, table in document.items():
        if env != "default" and isinstance(table, Table) and "plugins" in table:
            notes.append(f"[{env}] sets plugins of its own: add '{plugin_name(entry)}' there too to enable it there")
    return notes
