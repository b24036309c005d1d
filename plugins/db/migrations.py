"""Alembic wired to ``fastplug.plugins.db.api.Base.metadata``: one branch per plugin plus the app's own."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from fastplug.config import Settings
from fastplug.core import Plugins
from fastplug.plugins.db.settings import APP_BRANCH, DbSettings

SCRIPT_LOCATION = Path(__file__).with_name("alembic")


@dataclass(frozen=True, slots=True)
class VersionLocation:
    """Where one branch's revision files live."""

    branch: str
    path: Path


def version_locations(settings: Settings, plugins: Plugins) -> list[VersionLocation]:
    """Each enabled plugin's migrations directory, then the app's (beside settings.toml)."""
    found = [VersionLocation(name, Path(result).resolve()) for name, result in plugins.call_each("register_migrations")]
    conf = settings.section("db", DbSettings)
    app_dir = (settings.path.parent / conf.migrations_dir).resolve()
    found.append(VersionLocation(APP_BRANCH, app_dir))
    return found


def load_models(plugins: Plugins) -> None:
    """Import every plugin's models so ``Base.metadata`` holds all their tables."""
    plugins.call_each("register_models")


def alembic_config(settings: Settings, plugins: Plugins, connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for this app; ``connection`` reuses an open one (startup)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    _set_locations(cfg, [loc.path for loc in version_locations(settings, plugins) if loc.path.is_dir()])
    cfg.attributes["fastplug.settings"] = settings
    cfg.attributes["fastplug.plugins"] = plugins
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _set_locations(cfg: Config, paths: Sequence[Path]) -> None:
    unique = sorted({str(p) for p in paths})
    cfg.set_main_option("version_locations", os.pathsep.join(unique))
    cfg.attributes["fastplug.has_versions"] = bool(unique)


def upgrade(cfg: Config, target: str = "heads") -> None:
    """Upgrade to ``target`` (every branch's head by default); nothing to do without revisions."""
    if cfg.attributes.get("fastplug.has_versions") and ScriptDirectory.from_config(cfg).get_heads():
        command.upgrade(cfg, target)


def downgrade(cfg: Config, target: str) -> None:
    """Downgrade to ``target`` (``base``, ``-1``, ``<branch>@-1``, a revision id)."""
    command.downgrade(cfg, target)


def current(cfg: Config) -> None:
    """Print the revision(s) the database is at."""
    command.current(cfg, verbose=False)


def history(cfg: Config) -> None:
    """Print the revision history."""
    command.history(cfg)


def revision(
    cfg: Config,
    message: str,
    branch: str = APP_BRANCH,
    autogenerate: bool = False,
) -> Any:
    """Write a new revision on ``branch`` (a plugin's name, or ``app``) into its directory."""
    settings, plugins = cfg.attributes["fastplug.settings"], cfg.attributes["fastplug.plugins"]
    locations = {loc.branch: loc for loc in version_locations(settings, plugins)}
    if branch not in locations:
        raise ValueError(f"no migrations directory for '{branch}' (known: {', '.join(locations)})")
    location = locations[branch]
    location.path.mkdir(parents=True, exist_ok=True)
    _set_locations(cfg, [loc.path for loc in locations.values() if loc.path.is_dir()])
    script = ScriptDirectory.from_config(cfg)
    branch_exists = any(branch in (rev.branch_labels or ()) for rev in script.walk_revisions())
    return command.revision(
        cfg,
        message=message,
        autogenerate=autogenerate,
        head=f"{branch}@head" if branch_exists else "base",
        branch_label=None if branch_exists else branch,
        version_path=str(location.path),
    )


def heads(cfg: Config) -> Sequence[str]:
    """The head revision of every branch."""
    return ScriptDirectory.from_config(cfg).get_heads()
