"""Hooks the db plugin adds for other plugins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from fastplug.core import hookspec

if TYPE_CHECKING:
    from fastplug.config import Settings
    from fastplug.plugins.db.api import Seeder


@hookspec
def register_models() -> Sequence[type | ModuleType] | None:
    """Return model classes or modules (subclasses of ``fastplug.plugins.db.api.Base``).

    Importing them puts their tables in ``Base.metadata``; the tables returned belong to this
    plugin's migrations. Fires when the db plugin starts (lifespan) and in ``manage.py db``
    commands (migrate, seed...), before the schema is touched."""


@hookspec
def register_migrations() -> str | Path | None:
    """Return the directory of this plugin's Alembic revision files: migrated on their own, with
    their own version table (``alembic_version_<plugin>``), after the plugins it requires. A
    revision's ``depends_on`` may name only revisions of the same directory."""


@hookspec
def register_seeders(settings: Settings) -> Sequence[Seeder] | None:
    """Return :class:`fastplug.plugins.db.api.Seeder` objects filling this plugin's tables for
    ``manage.py db seed`` (their click options join the command; ``after`` orders them)."""
