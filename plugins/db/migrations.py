"""Alembic wired to ``fastplug.plugins.db.api.Base.metadata``: each plugin's migrations run as an
environment of their own, with their own version table (``alembic_version_<plugin>``), in the
plugins' start order (requires/after), the app's own last. A disabled plugin's table and rows
stay as they are; enabling it again resumes it."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import Connection, inspect, make_url, pool
from sqlalchemy.ext.asyncio import create_async_engine

from fastplug.config import Settings
from fastplug.core import Plugins
from fastplug.plugins.db.branches import (
    SCRIPT_LOCATION,
    VERSION_TABLE_PREFIX,
    Branch,
    MigrationError,
    disabled_branches,
    enabled_branches,
)
from fastplug.plugins.db.settings import APP_BRANCH

__all__ = ["Branch", "BranchStatus", "MigrationError", "Migrations", "alembic_config", "on_database", "upgrade_all"]

T = TypeVar("T")
_RELATIVE = re.compile(r"^[+-]\d+$")


def alembic_config(
    settings: Settings, plugins: Plugins, branch: Branch, connection: Connection | None = None
) -> Config:
    """An Alembic ``Config`` for one branch; ``connection`` reuses an open one."""
    cfg = Config(stdout=sys.stdout)  # the current one (Alembic's default is bound at import)
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(branch.path))
    cfg.attributes["fastplug.settings"] = settings
    cfg.attributes["fastplug.plugins"] = plugins
    cfg.attributes["fastplug.branch"] = branch
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@dataclass(frozen=True, slots=True)
class BranchStatus:
    """Where one plugin's (or the app's) migrations stand in the database."""

    name: str
    enabled: bool
    current: tuple[str, ...]
    heads: tuple[str, ...] | None  # None: its revision files cannot be found

    @property
    def state(self) -> str:
        """``up to date``, ``pending``, ``not migrated`` or ``unknown``."""
        if not self.current:
            return "not migrated"
        if self.heads is None:
            return "unknown"
        return "up to date" if set(self.current) == set(self.heads) else "pending"


@dataclass
class Migrations:
    """Migration commands on one open connection (in its transaction)."""

    settings: Settings
    plugins: Plugins
    connection: Connection
    branches: list[Branch] = field(init=False)

    def __post_init__(self) -> None:
        self.branches = enabled_branches(self.settings, self.plugins)

    @property
    def active(self) -> list[Branch]:
        """The enabled branches with revision files, in migration order."""
        return [b for b in self.branches if b.has_revisions]

    def config(self, branch: Branch) -> Config:
        return alembic_config(self.settings, self.plugins, branch, self.connection)

    def disabled(self) -> list[Branch]:
        """Disabled plugins with migrations or a version table."""
        tables = [t for t in inspect(self.connection).get_table_names() if t.startswith(VERSION_TABLE_PREFIX)]
        return disabled_branches(self.plugins, tables)

    def adopt_legacy(self) -> dict[str, tuple[str, ...]]:
        """Move the revisions of a single ``alembic_version`` table into the plugins' tables."""
        from fastplug.plugins.db.legacy import adopt

        return adopt(self.connection, [*self.active, *(b for b in self.disabled() if b.has_revisions)])

    def upgrade(self, target: str = "heads") -> None:
        """Upgrade every branch (or the one ``target`` names) to its head (or ``target``)."""
        for branch, rev in self.route(target, down=False):
            command.upgrade(self.config(branch), rev)

    def downgrade(self, target: str) -> None:
        """Downgrade to ``target``: ``base`` (every branch, the app's first), ``<plugin>@-1``,
        ``<plugin>@base`` or a revision id."""
        for branch, rev in self.route(target, down=True):
            command.downgrade(self.config(branch), rev)

    def current(self) -> None:
        """Print the revision(s) each branch is at."""
        for branch in self.active:
            command.current(self.config(branch), verbose=False)

    def status(self) -> list[BranchStatus]:
        """Every plugin with migrations (disabled ones included), then the app's branch."""
        plugins = [b for b in self.branches if b.name != APP_BRANCH and b.has_revisions]
        apps = [b for b in self.branches if b.name == APP_BRANCH]
        found: list[BranchStatus] = []
        for branch in [*plugins, *self.disabled(), *apps]:
            current = MigrationContext.configure(
                self.connection, opts={"version_table": branch.version_table}
            ).get_current_heads()
            if branch.name == APP_BRANCH and not current and not branch.has_revisions:
                continue
            heads = tuple(branch.script().get_heads()) if branch.has_revisions else None
            if heads is None and branch.path is not None:
                heads = ()
            found.append(BranchStatus(branch.name, branch.enabled, tuple(current), heads))
        return found

    def revision(self, message: str, branch: str = APP_BRANCH, autogenerate: bool = False) -> Any:
        """Write a new revision on ``branch`` (a plugin's name, or ``app``) into its directory."""
        by_name = {b.name: b for b in self.branches}
        if branch not in by_name:
            raise MigrationError(f"no migrations directory for '{branch}' (known: {', '.join(by_name)})")
        chosen = by_name[branch]
        assert chosen.path is not None
        exists = chosen.has_revisions and bool(chosen.script().get_heads())
        chosen.path.mkdir(parents=True, exist_ok=True)
        return command.revision(
            self.config(chosen),
            message=message,
            autogenerate=autogenerate,
            head="head" if exists else "base",
            branch_label=None if exists else branch,
            version_path=str(chosen.path),
        )

    def route(self, target: str, *, down: bool) -> list[tuple[Branch, str]]:
        """The branches ``target`` is about, each with the target inside its own environment."""
        active = self.active
        if target in ("heads", "head", "base"):
            rev = "base" if target == "base" else "heads"
            return [(b, rev) for b in (reversed(active) if down else active)]
        name, at, rest = target.partition("@")
        if at:
            return [(self._branch(name), {"head": "heads"}.get(rest, rest))]
        if _RELATIVE.match(target):
            if len(active) == 1:
                return [(active[0], target)]
            example = active[-1].name if active else "orders"
            raise MigrationError(f"'{target}' is ambiguous with several plugins' migrations: say {example}@{target}")
        rev = re.split(r"[+-]", target, maxsplit=1)[0]
        for branch in active:
            try:
                branch.script().get_revision(rev)
            except CommandError:
                continue
            return [(branch, target)]
        names = ", ".join(b.name for b in active) or "none"
        raise MigrationError(f"no enabled plugin's migrations have revision '{rev}' (plugins with migrations: {names})")

    def _branch(self, name: str) -> Branch:
        for branch in self.active:
            if branch.name == name:
                return branch
        if any(b.name == name for b in self.disabled()):
            raise MigrationError(f"plugin '{name}' is not enabled: add it to plugins in settings.toml to migrate it")
        names = ", ".join(b.name for b in self.active) or "none"
        raise MigrationError(f"no migrations for '{name}' (plugins with migrations: {names})")


def upgrade_all(settings: Settings, plugins: Plugins, connection: Connection) -> None:
    """Adopt an old single version table, then upgrade every branch to its head (startup)."""
    migrations = Migrations(settings, plugins, connection)
    migrations.adopt_legacy()
    migrations.upgrade()


def on_database(settings: Settings, plugins: Plugins, work: Callable[[Migrations], T]) -> T:
    """Run ``work`` on the app's database in one transaction (after adopting an old version table)."""
    from fastplug.plugins.db.engine import db_settings, ensure_sqlite_dir

    def run(connection: Connection) -> T:
        migrations = Migrations(settings, plugins, connection)
        migrations.adopt_legacy()
        return work(migrations)

    async def connect() -> T:
        url = make_url(db_settings(settings).url)
        ensure_sqlite_dir(url)
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(run)
        finally:
            await engine.dispose()

    return asyncio.run(connect())


def history(settings: Settings, plugins: Plugins) -> None:
    """Print each enabled branch's revision history (no database needed)."""
    for branch in enabled_branches(settings, plugins):
        if branch.has_revisions:
            command.history(alembic_config(settings, plugins, branch))
