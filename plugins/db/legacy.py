"""Adopt databases migrated before per-plugin version tables: every branch in ``alembic_version``.

Each revision recorded there (with what it implied: its ancestors, and the revisions it
depended on in other branches) moves to the version table of the plugin whose revision files
contain it. Revisions no known plugin has stay where they are, until that plugin is back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic.runtime.migration import MigrationContext
from alembic.script import Script
from alembic.util import to_tuple
from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select

from fastplug.plugins.db.branches import Branch

log = logging.getLogger("fastplug.db")

LEGACY_TABLE = "alembic_version"

# depends_on the shipped revisions declared while every plugin shared one version table (the
# plugin order replaces them now); still needed to read what such a table implied.
REMOVED_DEPENDS_ON: dict[str, tuple[str, ...]] = {"c3e7a2f4d9b3": ("users", "products")}

_legacy = Table(LEGACY_TABLE, MetaData(), Column("version_num", String(32), primary_key=True))


def adopt(connection: Connection, branches: Sequence[Branch]) -> dict[str, tuple[str, ...]]:
    """Move ``alembic_version``'s revisions into the branches' tables (those still empty); the
    revisions stamped, by branch. The old table is dropped once nothing is left in it."""
    if not inspect(connection).has_table(LEGACY_TABLE):
        return {}
    recorded = list(connection.scalars(select(_legacy.c.version_num)))
    scripts: dict[str, tuple[Branch, Script]] = {}
    labels: dict[str, str] = {}
    for branch in branches:
        if not branch.has_revisions:
            continue
        for script in branch.script().walk_revisions():
            scripts[script.revision] = (branch, script)
            for label in script.branch_labels:
                labels[label] = script.revision
    known = [rev for rev in recorded if rev in scripts]
    implied = _implied(known, scripts, labels)
    downs = {down for rev in implied for down in to_tuple(scripts[rev][1].down_revision, default=())}
    heads: dict[str, list[str]] = {}
    for rev in sorted(implied - downs):
        heads.setdefault(scripts[rev][0].name, []).append(rev)
    by_name = {b.name: b for b in branches}
    stamped: dict[str, tuple[str, ...]] = {}
    for name, revs in heads.items():
        context = MigrationContext.configure(connection, opts={"version_table": by_name[name].version_table})
        if context.get_current_heads():
            continue  # already migrated with its own table
        script = by_name[name].script()
        for rev in revs:
            context.stamp(script, rev)
        stamped[name] = tuple(revs)
    if known:
        connection.execute(_legacy.delete().where(_legacy.c.version_num.in_(known)))
    left = [rev for rev in recorded if rev not in scripts]
    if left:
        log.warning(
            "%s still records %s: no known plugin's migrations contain them; enable that plugin to adopt them",
            LEGACY_TABLE,
            ", ".join(left),
        )
    else:
        _legacy.drop(connection)
    return stamped


def _implied(recorded: Sequence[str], scripts: dict[str, tuple[Branch, Script]], labels: dict[str, str]) -> set[str]:
    """``recorded`` and every revision they imply (down revisions and dependencies)."""
    seen: set[str] = set()
    todo = list(recorded)
    while todo:
        rev = todo.pop()
        if rev in seen or rev not in scripts:
            continue
        seen.add(rev)
        script = scripts[rev][1]
        parents = (
            *to_tuple(script.down_revision, default=()),
            *to_tuple(script.dependencies, default=()),
            *REMOVED_DEPENDS_ON.get(rev, ()),
        )
        todo.extend(labels.get(name, name) for name in parents)
    return seen
