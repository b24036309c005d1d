"""Hooks the db plugin adds for other plugins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from core.markers import hookspec


@hookspec
def register_models() -> Sequence[type | ModuleType] | None:
    """Return model classes or modules (subclasses of ``core.db.Base``) so they join the
    metadata Alembic and the app use. Fires once when the db plugin builds."""


@hookspec
def register_migrations() -> str | Path | None:
    """Return the directory of this plugin's Alembic revision files (one branch per
    plugin, labelled with the plugin's name)."""
