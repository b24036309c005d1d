"""The Alembic branches of an app: one per plugin with migrations, each with its own version
table, then the app's own (``migrations/`` beside settings.toml), and the tables each one owns."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Table

from fastplug.config import Settings
from fastplug.core import Plugins
from fastplug.plugins.db.settings import APP_BRANCH, DbSettings

SCRIPT_LOCATION = Path(__file__).with_name("alembic")
VERSION_TABLE_PREFIX = "alembic_version_"


class MigrationError(Exception):
    """A migration command cannot run as asked (one line, naming the plugin and what to do)."""


def version_table(branch: str) -> str:
    """The version table of ``branch``: ``alembic_version_<plugin>`` (``alembic_version_app``)."""
    return VERSION_TABLE_PREFIX + re.sub(r"[^a-z0-9_]", "_", branch.lower())


@dataclass(frozen=True, slots=True)
class Branch:
    """One plugin's (or the app's) revision files and version table."""

    name: str
    path: Path | None  # None: a disabled plugin whose revision files cannot be found
    enabled: bool = True

    @property
    def version_table(self) -> str:
        return version_table(self.name)

    @property
    def has_revisions(self) -> bool:
        """Whether its directory holds revision files."""
        return self.path is not None and self.path.is_dir() and any(self.path.glob("*.py"))

    def script(self) -> ScriptDirectory:
        """Its revision files alone (cross-plugin ``depends_on`` is an error: order comes from ``requires``)."""
        if self.path is None:
            raise MigrationError(f"plugin '{self.name}' is not enabled and its migrations cannot be found")
        script = ScriptDirectory(str(SCRIPT_LOCATION), version_locations=[str(self.path)])
        try:
            script.revision_map.heads  # noqa: B018 - loads and resolves the revisions
        except KeyError as exc:
            raise MigrationError(
                f"plugin '{self.name}' migrations: a revision's depends_on names {exc.args[0]!r}, which is not one "
                f"of its own revisions; remove it (plugins are migrated in their requires/after order)"
            ) from None
        return script


def enabled_branches(settings: Settings, plugins: Plugins) -> list[Branch]:
    """Each enabled plugin's migrations directory in start order, then the app's."""
    found = [Branch(name, Path(result).resolve()) for name, result in plugins.call_each("register_migrations")]
    conf = settings.section("db", DbSettings)
    found.append(Branch(APP_BRANCH, (settings.path.parent / conf.migrations_dir).resolve()))
    return found


def disabled_branches(plugins: Plugins, recorded: Iterable[str]) -> list[Branch]:
    """Known plugins that are not enabled and ship migrations (found by the ``migrations``
    folder beside their package, without importing them), plus the owners of ``recorded``
    version tables; by name."""
    enabled = set(plugins.names) | {APP_BRANCH}
    found: dict[str, Branch] = {}
    for name, source in plugins.known.items():
        if name in enabled:
            continue
        path = _package_dir(source)
        branch = Branch(name, path / "migrations" if path is not None else None, enabled=False)
        if branch.has_revisions:
            found[version_table(name)] = branch
    for table in recorded:
        if table not in found and table not in {version_table(name) for name in enabled}:
            found[table] = Branch(table.removeprefix(VERSION_TABLE_PREFIX), None, enabled=False)
    return sorted(found.values(), key=lambda b: b.name)


def _package_dir(source: Any) -> Path | None:
    """A built-in's or local plugin's package folder (``None`` for other plugins)."""
    if getattr(source, "builtin", False):
        try:
            spec = importlib.util.find_spec(source.target)  # imports the parent packages only
        except (ImportError, ValueError):
            return None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        return Path(locations[0]) if locations else None
    path = getattr(source, "path", None)
    if path is not None and Path(path).name == "__init__.py":
        return Path(path).parent
    return None


def table_owners(plugins: Plugins, with_migrations: set[str]) -> dict[str, str]:
    """Import every enabled plugin's models (``register_models``): table name -> branch. The
    tables of plugins ``with_migrations`` are theirs; those of plugins without migrations are the
    app's. A table in the metadata that no enabled plugin registers belongs to no branch (a model
    imported from elsewhere is never migrated by accident)."""
    owners: dict[str, str] = {}
    for name, models in plugins.call_each("register_models"):
        for table in _tables(models):
            owners.setdefault(table.name, name if name in with_migrations else APP_BRANCH)
    return owners


def _tables(models: Sequence[type | ModuleType]) -> list[Table]:
    found: list[Table] = []
    for item in models:
        if isinstance(item, ModuleType):
            for value in vars(item).values():
                if isinstance(value, Table):
                    found.append(value)
                elif isinstance(value, type) and value.__module__ == item.__name__:
                    found.extend(_tables([value]))
        elif isinstance(getattr(item, "__table__", None), Table):
            found.append(item.__table__)  # type: ignore[attr-defined]
    return found
