"""core/HOOKS.md documents exactly the hooks that exist, with their real arguments; ``manage.py hooks``."""

from __future__ import annotations

import ast
import importlib
import importlib.resources
import importlib.util
import inspect
import json
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pluggy
import pytest
from click.testing import CliRunner

import fastplug.plugins
from fastplug.config.settings import Settings
from fastplug.core import PluginInfo, Plugins, hookimpl, hookspec
from fastplug.core import hookspecs as core_hookspecs
from fastplug.core.cli import cli
from fastplug.core.hooks_command import hook_rows

HOOKS_MD = Path(__file__).resolve().parents[1] / "core" / "HOOKS.md"
HEADING = re.compile(r"^### `(?P<name>\w+)`$", re.MULTILINE)
SIGNATURE = re.compile(r"```python\n(?P<line>def .*?)\n```", re.DOTALL)
DEFINED_BY = re.compile(r"\*\*Defined by:\*\* `?(?P<owner>\w+)`?")

Load = Callable[..., tuple[Settings, Plugins]]


def _hookspec_modules() -> dict[str, ModuleType]:
    """``owner -> hookspecs module``: core's and each built-in plugin's ``hookspecs`` module."""
    found: dict[str, ModuleType] = {"core": core_hookspecs}
    for info in pkgutil.iter_modules(fastplug.plugins.__path__):
        name = f"fastplug.plugins.{info.name}.hookspecs"
        if info.ispkg and importlib.util.find_spec(name) is not None:
            found[info.name] = importlib.import_module(name)
    return found


def _specs() -> dict[str, tuple[str, Callable[..., Any]]]:
    """``hook -> (owner, function)`` for every function carrying the ``fastplug_spec`` mark."""
    specs: dict[str, tuple[str, Callable[..., Any]]] = {}
    for owner, module in _hookspec_modules().items():
        for name, value in vars(module).items():
            if callable(value) and hasattr(value, "fastplug_spec"):
                assert name not in specs, f"hook {name} is defined by both {specs[name][0]} and {owner}"
                specs[name] = (owner, value)
    return specs


def _entries() -> dict[str, str]:
    """``hook -> its section of HOOKS.md`` (from its heading to the next heading)."""
    text = HOOKS_MD.read_text()
    headings = list(HEADING.finditer(text))
    ends = [*(h.start() for h in headings[1:]), len(text)]
    return {h["name"]: text[h.end() : end] for h, end in zip(headings, ends, strict=True)}


def _documented_args(hook: str, section: str) -> list[str]:
    """The parameter names of the ``def hook(...)`` signature block of ``section``."""
    found = SIGNATURE.search(section)
    assert found is not None, f"HOOKS.md: `{hook}` has no ```python def {hook}(...)``` signature block"
    tree = ast.parse(found["line"] + ": ...")
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef) and function.name == hook, found["line"]
    return [arg.arg for arg in function.args.args]


def test_the_specs_are_found() -> None:
    owners = {owner for owner, _ in _specs().values()}
    assert {"core", "db", "tasks", "metrics"} <= owners
    assert {"register_routers", "register_models", "register_seeders", "register_tasks"} <= set(_specs())


def test_every_hook_is_documented_and_every_documented_hook_exists() -> None:
    specs, entries = _specs(), _entries()
    assert sorted(set(specs) - set(entries)) == [], "hooks without a ### `name` entry in core/HOOKS.md"
    assert sorted(set(entries) - set(specs)) == [], "core/HOOKS.md documents hooks that do not exist"


def test_documented_arguments_and_owner_match_the_hookspecs() -> None:
    entries = _entries()
    for hook, (owner, function) in _specs().items():
        section = entries[hook]
        params = [p for p in inspect.signature(function).parameters if p != "self"]
        assert _documented_args(hook, section) == params, f"HOOKS.md: arguments of {hook}"
        defined = DEFINED_BY.search(section)
        assert defined is not None and defined["owner"] == owner, f"HOOKS.md: who defines {hook}"


def test_hooks_md_ships_with_fastplug_core() -> None:
    assert importlib.resources.files("fastplug.core").joinpath("HOOKS.md").is_file()


def _invoke(settings: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--settings", str(settings), *args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def db_users_settings(fastplug_settings_file: Path) -> Path:
    fastplug_settings_file.write_text(
        '[default]\nplugins = ["health", "db", "users"]\n[default.db]\nurl = "sqlite+aiosqlite:///./hooks.db"\n'
    )
    return fastplug_settings_file


def test_hooks_json_lists_core_and_plugin_hooks_with_implementers(db_users_settings: Path) -> None:
    code, out = _invoke(db_users_settings, "hooks", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["register_routers"]["defined_by"] == "core"
    assert rows["register_routers"]["args"] == ["settings"]
    assert rows["register_routers"]["implementers"] == ["health", "users"]
    assert rows["lifespan"]["args"] == ["app", "settings", "services"]
    assert rows["register_models"] == {
        "name": "register_models",
        "defined_by": "db",
        "args": [],
        "implementers": ["users"],
    }
    assert rows["register_seeders"]["defined_by"] == "db"
    assert "register_tasks" not in rows  # the tasks plugin is not enabled
    owners = [row["defined_by"] for row in rows.values()]
    assert owners == sorted(owners, key=lambda owner: owner != "core")  # core's hooks first
    assert next(iter(rows)) == "plugin_info"  # in definition order


def test_hooks_table(db_users_settings: Path) -> None:
    code, out = _invoke(db_users_settings, "hooks")
    header, _rule, *lines = out.splitlines()
    assert code == 0
    assert header.split() == ["hook", "defined", "by", "arguments", "implementers"]
    table = {line.split()[0]: line.split()[1:] for line in lines if line.strip() and not line.startswith("Each")}
    assert table["register_routers"] == ["core", "settings", "health,users"]
    assert table["register_models"] == ["db", "-", "users"]


def test_only_core_hooks_without_plugins_that_add_any(fastplug_settings_file: Path) -> None:
    code, out = _invoke(fastplug_settings_file, "hooks", "--json")
    assert code == 0
    rows = json.loads(out)
    assert {row["defined_by"] for row in rows} == {"core"}
    assert {row["name"] for row in rows} == set(n for n, (owner, _) in _specs().items() if owner == "core")


class _WidgetSpecs:
    @hookspec
    def register_widgets(self, prefix: str) -> list[str]:  # type: ignore[empty-body]
        """Return widget names."""


def test_a_hook_defined_in_a_class_is_attributed_to_the_plugin_adding_it(fastplug_load: Load) -> None:
    def add_hookspecs(pm: pluggy.PluginManager) -> None:
        pm.add_hookspecs(_WidgetSpecs)

    widgets = SimpleNamespace(
        plugin_info=hookimpl(lambda: PluginInfo(name="widgets")), add_hookspecs=hookimpl(add_hookspecs)
    )
    gadget = SimpleNamespace(
        plugin_info=hookimpl(lambda: PluginInfo(name="gadget", after=("widgets",))),
        register_widgets=hookimpl(optionalhook=True)(lambda prefix: [f"{prefix}gear"]),
    )
    _, plugins = fastplug_load(plugins=["gadget", "widgets"], extra_plugins={"widgets": widgets, "gadget": gadget})
    rows = {row.name: row for row in hook_rows(plugins)}
    assert rows["register_widgets"].defined_by == "widgets"
    assert rows["register_widgets"].args == ["prefix"]
    assert rows["register_widgets"].implementers == ["gadget"]
    assert rows["add_hookspecs"].implementers == ["widgets"]
