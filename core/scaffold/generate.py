"""Generate a project, a local plugin or a distributable plugin from the templates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fastplug.config.errors import FastplugError, Problem
from fastplug.config.settings import plugin_name
from fastplug.core.scaffold.names import check_plugin_name, package_name
from fastplug.core.scaffold.render import render_tree
from fastplug.core.scaffold.settings_edit import add_plugin, listed_plugins


@dataclass(frozen=True, slots=True)
class Generated:
    """What a generator wrote: the plugin's name, its folder, every file, notes for the user."""

    name: str
    root: Path
    files: list[Path]
    notes: list[str]


def known_plugins() -> set[str]:
    """The names of every built-in and installed plugin."""
    from fastplug.core.discovery import discover

    unique, _ = discover()
    return set(unique)


def _context(name: str, module: str, project: str, description: str) -> dict[str, str]:
    from fastplug.core.discovery import fastplug_version

    version = fastplug_version()
    release = ".".join(version.split(".")[:2])
    return {
        "name": name,
        "module": module,
        "project": project,
        "cls": "".join(part.capitalize() for part in name.split("_")),
        "description": description,
        "fastplug_requirement": "fastplug" if "unknown" in version else f"fastplug>={release}",
    }


def create_project(directory: Path, name: str | None = None) -> Generated:
    """A new project in ``directory`` (missing or empty), its own plugin package named ``name``
    (default: the directory's name as an identifier)."""
    directory = directory.expanduser().absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FastplugError(
            [Problem("fastplug.E066", f"{directory} exists and is not empty", "give a new or empty directory")]
        )
    name = name or package_name(directory.name)
    check_plugin_name(name, known_plugins())
    project = directory.name if re.fullmatch(r"[\w .-]+", directory.name) else name
    context = _context(name, name, project, f"{project}'s own plugin")
    directory.mkdir(parents=True, exist_ok=True)
    files = [
        *render_tree("project", directory, context),
        *render_tree("plugin", directory / name, context),
        *render_tree("local_test", directory / "tests", context),
        *render_tree("conftest", directory / "tests", context),
    ]
    return Generated(name, directory, files, [])


def create_local_plugin(settings_file: Path, name: str) -> Generated:
    """Plugin package ``name/`` beside ``settings_file`` (and its test in ``tests/``), listed in
    ``[default] plugins`` by its module path."""
    project = settings_file.parent.absolute()
    listed = {plugin_name(entry) for entry in listed_plugins(settings_file)}
    check_plugin_name(name, known_plugins() | listed, project)
    test = project / "tests" / f"test_{name}.py"
    if test.exists():
        raise FastplugError([Problem("fastplug.E062", f"{test} already exists", "pick another name")])
    context = _context(name, name, project.name, "a local plugin")
    files = render_tree("plugin", project / name, context)
    files += render_tree("local_test", project / "tests", context)
    if not (project / "tests" / "conftest.py").exists():
        files += render_tree("conftest", project / "tests", context)
    notes = add_plugin(settings_file, name)
    return Generated(name, project / name, files, notes)


def create_package_plugin(parent: Path, name: str) -> Generated:
    """A distributable plugin ``fastplug-<name>/`` in ``parent``: package ``fastplug_<name>``,
    found through the ``fastplug`` entry point ``<name>``."""
    module = f"fastplug_{name}"
    root = parent.absolute() / f"fastplug-{name}"
    check_plugin_name(name, known_plugins(), module=module)
    if root.exists():
        raise FastplugError([Problem("fastplug.E062", f"{root} already exists", "pick another name")])
    context = _context(name, module, f"fastplug-{name}", f"the {name} plugin for fastplug")
    files = [*render_tree("package", root, context), *render_tree("plugin", root / module, context)]
    notes = [
        f"install it: pip install -e './{root.name}[test]'",
        f'then enable it: add "{name}" to plugins in [default] of settings.toml',
        f"its tests: cd {root.name} && python -m pytest",
    ]
    return Generated(name, root, files, notes)
