"""Names of generated projects and plugins: identifiers that clash with nothing importable."""

from __future__ import annotations

import importlib.machinery
import keyword
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from fastplug.config.errors import FastplugError, Problem

PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def package_name(directory_name: str) -> str:
    """The project's plugin package named after its directory: ``"My-Proj"`` -> ``"my_proj"``."""
    name = re.sub(r"\W+", "_", directory_name.strip().lower()).strip("_")
    if not name:
        name = "app"
    if not name[0].isalpha():
        name = f"app_{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name = f"{name}_app"
    return name


def importable_elsewhere(module: str, skip: Iterable[Path] = ()) -> bool:
    """True when ``module`` is a built-in, standard or installed module (``skip``: ignored folders)."""
    if module in sys.builtin_module_names or module in sys.stdlib_module_names:
        return True
    skipped = {p.resolve() for p in skip}
    where = [p for p in sys.path if p and Path(p).resolve() not in skipped and Path(p).resolve() != Path.cwd()]
    return importlib.machinery.PathFinder.find_spec(module, where) is not None


def check_plugin_name(
    name: str, known: Iterable[str], project_dir: Path | None = None, module: str | None = None
) -> None:
    """Raise :class:`FastplugError` unless ``name`` can name a new plugin.

    ``known``: the plugins fastplug already knows (built-in, installed, listed); ``module``: the
    top-level module the plugin will be (``name`` itself for a local one) in ``project_dir``.
    """
    module = module or name
    hint = "pick another name"
    if not PLUGIN_NAME.match(name) or keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise FastplugError(
            [Problem("fastplug.E060", f"'{name}' is not a plugin name", "use lower-case letters, digits and _")]
        )
    if name in set(known):
        raise FastplugError([Problem("fastplug.E061", f"a plugin named '{name}' already exists", hint)])
    if project_dir is not None:
        for candidate in (project_dir / module, project_dir / f"{module}.py"):
            if candidate.exists():
                raise FastplugError([Problem("fastplug.E062", f"{candidate} already exists", hint)])
    if importable_elsewhere(module, [project_dir] if project_dir else []):
        raise FastplugError(
            [Problem("fastplug.E063", f"'{module}' would clash with the installed or standard module '{module}'", hint)]
        )
