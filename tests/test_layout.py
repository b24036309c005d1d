"""fastplug's layout: one ``fastplug`` namespace, and plugins that keep to public modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
FOLDERS = {"core": "fastplug.core", "config": "fastplug.config", "plugins": "fastplug.plugins"}
# what each built-in's public module may import at import time (nothing that connects or starts)
HEAVY = ("asyncpg", "alembic", "celery", "kombu", "prometheus_client", "gunicorn", "uvicorn")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(("fastplug", *path.relative_to(ROOT).with_suffix("").parts[:-1]))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _allowed(plugin: str, module: str) -> bool:
    if module.split(".")[0] in FOLDERS:
        return False  # a bare core/config/plugins: a second copy, or the user's own package
    if not module.startswith("fastplug.") and module != "fastplug":
        return True  # the standard library and third-party packages
    if module in ("fastplug.core", "fastplug.config"):
        return True
    own = f"fastplug.plugins.{plugin}"
    if module == own or module.startswith(own + "."):
        return True
    parts = module.split(".")
    return len(parts) == 4 and parts[:2] == ["fastplug", "plugins"] and parts[3] == "api"


def test_plugins_import_only_core_config_their_own_package_and_public_modules() -> None:
    bad = []
    for path in sorted(PLUGINS.rglob("*.py")):
        rel = path.relative_to(PLUGINS)
        if len(rel.parts) < 2:
            continue  # plugins/__init__.py
        plugin = rel.parts[0]
        for line, module in _imports(path):
            if not _allowed(plugin, module):
                bad.append(f"plugins/{rel}:{line}: {module}")
    assert not bad, "plugins may import fastplug.core, fastplug.config, their own package and other plugins' api:\n" + (
        "\n".join(bad)
    )


def test_the_boundary_check_catches_internals() -> None:
    assert not _allowed("orders", "fastplug.plugins.db.runtime")
    assert not _allowed("orders", "fastplug.core.manager")
    assert not _allowed("orders", "core")
    assert _allowed("orders", "fastplug.plugins.db.api")
    assert _allowed("orders", "fastplug.plugins.orders.store")


def test_every_package_folder_is_installed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["packages"])
    expected = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "templates" in parts or "__pycache__" in parts:
                continue
            expected.add(".".join((name, *parts)))
    assert expected == packages


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_a_folder_imported_by_its_bare_name_fails_at_once(folder: str) -> None:
    run = subprocess.run([sys.executable, "-c", f"import {folder}"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1
    assert (
        f"ImportError: fastplug's '{folder}' folder is the package '{FOLDERS[folder]}': import {FOLDERS[folder]}"
        in (run.stderr)
    )


def test_a_bare_submodule_import_fails_too() -> None:
    run = subprocess.run([sys.executable, "-c", "import plugins.db.api"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1 and "import fastplug.plugins" in run.stderr


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("fastplug.plugins.db.api", ["Base", "DbSession", "DbReader", "ReadQuery", "RawPool", "Seeder", "SeedContext"]),
        ("fastplug.plugins.cache.api", ["cached", "ResponseCache", "OptionalCache", "invalidate_committed"]),
        ("fastplug.plugins.tasks.api", ["Tasks", "SERVICE", "CELERY"]),
        ("fastplug.plugins.redis.api", ["RedisClient", "CLIENT"]),
        ("fastplug.plugins.http.api", ["HttpClient", "CLIENT"]),
        ("fastplug.plugins.products.api", ["Cents"]),
        ("fastplug.plugins.security.api", ["rate_limit", "LIMITS"]),
        ("fastplug.plugins.profiling.api", ["LOOP", "Loop", "LoopFigures"]),
    ],
)
def test_public_modules_import_light_with_their_plugin_disabled(module: str, names: list[str]) -> None:
    code = (
        "import json, sys\n"
        f"import {module} as api\n"
        f"missing = [n for n in {names!r} if not hasattr(api, n)]\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "internals = sorted(m for m in sys.modules if m.startswith('fastplug.plugins.') and m.count('.') > 2 "
        "and not m.endswith(('.api', '.settings')) and m.split('.')[3] in ('runtime', 'engine', 'migrations', "
        "'middleware', 'service', 'celery_app', 'queue', 'client', 'backends'))\n"
        "print(json.dumps([missing, heavy, internals]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    missing, heavy, internals = json.loads(run.stdout)
    assert missing == [] and heavy == [] and internals == []


def test_public_modules_name_the_implementation_once() -> None:
    from fastplug.plugins.cache import api as cache_api
    from fastplug.plugins.cache.service import Cache
    from fastplug.plugins.tasks import api as tasks_api
    from fastplug.plugins.tasks.queue import TaskQueue

    assert cache_api.CacheService is Cache and tasks_api.TaskQueue is TaskQueue


def test_core_exports_the_plugin_author_api() -> None:
    import fastplug.core as core

    for name in core.__all__:
        assert getattr(core, name) is not None, name
