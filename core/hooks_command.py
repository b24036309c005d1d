"""``manage.py hooks``: every hook the loaded plugins can implement, who defines it, who implements it.

The reference for each hook (signature, when it fires, what it returns) is ``HOOKS.md`` beside this
module; this command shows what a given ``settings.toml`` makes of it: core's hooks plus those the
enabled plugins added with ``add_hookspecs``, and their implementers in start order.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import click
import pluggy

from fastplug.core import hookspecs as core_hookspecs
from fastplug.core.manager import Plugins

CORE = "core"


@dataclass(frozen=True, slots=True)
class HookRow:
    """One hookspec: its name, who defines it (``core`` or a plugin), its arguments, its implementers."""

    name: str
    defined_by: str
    args: list[str]
    implementers: list[str]


class _SpecRecorder:
    """Stands in for the plugin manager in an ``add_hookspecs`` call: notes what is added."""

    def __init__(self) -> None:
        self.added: list[Any] = []

    def add_hookspecs(self, module_or_class: Any) -> None:
        self.added.append(module_or_class)


def _module_name(obj: Any) -> str:
    return obj.__name__ if isinstance(obj, ModuleType) else getattr(obj, "__module__", "") or ""


def _owners(plugins: Plugins) -> dict[int, str]:
    """``id(namespace) -> plugin`` for every hookspec namespace a plugin's ``add_hookspecs`` adds."""
    owners = {id(core_hookspecs): CORE}
    for name in plugins.names:
        recorder = _SpecRecorder()
        with contextlib.suppress(Exception):  # the hook did more than add specs: module names decide
            plugins.call_each_one(name, "add_hookspecs", pm=recorder)
        for namespace in recorder.added:
            owners.setdefault(id(namespace), name)
    return owners


def _owner_by_module(namespace: Any, plugins: Plugins) -> str:
    """The plugin whose package holds ``namespace`` (``fastplug.plugins.db.hookspecs`` -> ``db``), or ``?``."""
    module = _module_name(namespace)
    for loaded in plugins:
        package = _module_name(loaded.obj)
        if package and (module == package or module.startswith(package + ".")):
            return loaded.name
    return "?"


def hook_rows(plugins: Plugins) -> list[HookRow]:
    """Every hookspec of ``plugins.pm``: core's first, then each plugin's in start order, each in
    definition order; implementers are enabled plugins in start order."""
    owners = _owners(plugins)
    position = {name: i for i, name in enumerate(plugins.names)}
    found: list[tuple[tuple[int, int, str], HookRow]] = []
    for hook_name, caller in vars(plugins.pm.hook).items():
        if not isinstance(caller, pluggy.HookCaller) or caller.spec is None:
            continue
        spec = caller.spec
        owner = owners.get(id(spec.namespace)) or _owner_by_module(spec.namespace, plugins)
        implementers = sorted(
            {impl.plugin_name for impl in caller.get_hookimpls() if impl.plugin_name in position},
            key=position.__getitem__,
        )
        row = HookRow(hook_name, owner, [*spec.argnames, *spec.kwargnames], implementers)
        line = getattr(getattr(spec.function, "__code__", None), "co_firstlineno", 0)
        rank = -1 if owner == CORE else position.get(owner, len(position))
        found.append(((rank, line, hook_name), row))
    return [row for _, row in sorted(found, key=lambda item: item[0])]


@click.command("hooks")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def hooks(as_json: bool) -> None:
    """List hooks: name, defining plugin (or core), arguments, implementers in start order."""
    from fastplug.core.cli import _table, get_context  # here: fastplug.core.cli imports this module

    _, plugins = get_context().load()
    rows = hook_rows(plugins)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    click.echo(
        _table(
            [[r.name, r.defined_by, ",".join(r.args) or "-", ",".join(r.implementers) or "-"] for r in rows],
            ["hook", "defined by", "arguments", "implementers"],
        )
    )
    click.echo("\nEach hook is described in HOOKS.md (fastplug/core/HOOKS.md).")
