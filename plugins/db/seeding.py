"""``manage.py db seed``: collect the enabled plugins' seeders, order them, run them in one
transaction with a progress bar each, and report rows per table."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from fastplug.config import Settings, mask_url, mask_url_password
from fastplug.core import PluginHookError, Plugins, one_line
from fastplug.plugins.db.api import Base, SeedContext, Seeder, SeedResult


class SeedError(Exception):
    """Seeding could not run or failed; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class PluginSeeder:
    """A seeder and the plugin that registered it."""

    plugin: str
    seeder: Seeder

    @property
    def label(self) -> str:
        return f"seeder '{self.seeder.name}' (plugin '{self.plugin}')"


@dataclass(frozen=True, slots=True)
class Report:
    """One seeder's outcome: rows per table and the seconds it took."""

    seeder: PluginSeeder
    result: SeedResult
    seconds: float


def collect(settings: Settings, plugins: Plugins) -> list[PluginSeeder]:
    """The enabled plugins' seeders in dependency order (``after``, then plugin order)."""
    try:
        returned = plugins.call_each("register_seeders", settings=settings)
    except PluginHookError as exc:
        raise SeedError(str(exc)) from exc
    found: list[PluginSeeder] = []
    for plugin, seeders in returned:
        for seeder in seeders:
            if not isinstance(seeder, Seeder):
                raise SeedError(f"plugin '{plugin}': register_seeders must return Seeder objects, got {seeder!r}")
            found.append(PluginSeeder(plugin, seeder))
    return _ordered(found)


def _ordered(found: list[PluginSeeder]) -> list[PluginSeeder]:
    by_name: dict[str, PluginSeeder] = {}
    for item in found:
        if item.seeder.name in by_name:
            raise SeedError(f"{item.label}: the name is taken by plugin '{by_name[item.seeder.name].plugin}'")
        by_name[item.seeder.name] = item
    for item in found:
        for name in item.seeder.after:
            if name not in by_name:
                raise SeedError(f"{item.label} runs after seeder '{name}', which no enabled plugin provides")
    ordered: list[PluginSeeder] = []
    pending = list(found)
    while pending:  # stable: among the ready ones, plugin order
        done = {p.seeder.name for p in ordered}
        ready = next((p for p in pending if set(p.seeder.after) <= done), None)
        if ready is None:
            raise SeedError(f"seeders wait for each other: {', '.join(p.seeder.name for p in pending)}")
        ordered.append(ready)
        pending.remove(ready)
    return ordered


def options(seeders: Sequence[PluginSeeder], taken: set[str]) -> list[click.Option]:
    """The seeders' click options; a name used twice is an error naming both."""
    owners: dict[str, str] = {name: "db seed" for name in taken}
    out: list[click.Option] = []
    for item in seeders:
        for option in item.seeder.options:
            for name in [option.name or "", *option.opts, *option.secondary_opts]:
                if name in owners:
                    raise SeedError(f"{item.label}: option '{name}' is already defined by {owners[name]}")
                owners[name] = item.label
            out.append(option)
    return out


def truncated_tables(seeders: Sequence[PluginSeeder]) -> list[Table]:
    """The seeders' tables and every table referencing them, children first."""
    wanted: set[Table] = {SeedContext.table(name) for item in seeders for name in item.seeder.tables}
    grew = True
    while grew:
        referencing = {
            t for t in Base.metadata.tables.values() if any(fk.column.table in wanted for fk in t.foreign_keys)
        }
        grew = not referencing <= wanted
        wanted |= referencing
    return [t for t in reversed(Base.metadata.sorted_tables) if t in wanted]


async def _truncate(connection: AsyncConnection, tables: Sequence[Table]) -> None:
    quote = connection.dialect.identifier_preparer.quote
    if connection.dialect.name == "postgresql":
        names = ", ".join(quote(t.name) for t in tables)
        await connection.execute(text(f"TRUNCATE TABLE {names} RESTART IDENTITY"))
        return
    for table in tables:  # children first: no foreign key is ever violated
        await connection.execute(table.delete())


class Bar:
    """A click progress bar on stderr (a terminal only), shown once the seeder knows its total."""

    def __init__(self, label: str, stack: ExitStack) -> None:
        self.label, self.stack = label, stack
        self.bar: Any = None

    def start(self, total: int) -> None:
        if self.bar is None and total > 0 and sys.stderr.isatty():
            bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True, show_eta=True)
            self.bar = self.stack.enter_context(bar)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)


async def _connect_check(connection_url: str, engine: Any) -> None:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        url = mask_url(connection_url)  # the password and a ?password= both masked
        raise SeedError(f"cannot connect to the database {url}: {one_line(exc)}") from exc


async def run(
    settings: Settings,
    plugins: Plugins,
    seeders: Sequence[PluginSeeder],
    values: Mapping[str, Any],
    *,
    seed: int,
    batch_size: int,
    truncate: bool,
) -> tuple[list[Table], list[Report]]:
    """Migrate to every head, then (optionally empty the tables and) run ``seeders`` in one
    transaction: the tables emptied and a report per seeder."""
    from fastplug.plugins.db.engine import QueryCounter, create_engine, db_settings
    from fastplug.plugins.db.runtime import migrate

    conf = db_settings(settings)
    plugins.call_each("register_models")
    engine = create_engine(conf, QueryCounter())
    try:
        await _connect_check(conf.url, engine)
        try:
            await migrate(engine, settings, plugins)
        except Exception as exc:
            raise SeedError(f"migrating the database failed: {mask_url_password(one_line(exc))}") from exc
        now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        emptied = truncated_tables(seeders) if truncate else []
        reports: list[Report] = []
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # also starts the transaction COPY joins
                await connection.execute(text("SET LOCAL statement_timeout = 0"))
            if emptied:
                await _truncate(connection, emptied)
            results: dict[str, SeedResult] = {}
            for item in seeders:
                started = time.perf_counter()
                with ExitStack() as stack:
                    ctx = SeedContext(
                        connection=connection,
                        options=values,
                        random=random.Random(f"{seed}:{item.seeder.name}"),
                        now=now,
                        batch_size=batch_size,
                        results=dict(results),
                        progress=Bar(item.seeder.name, stack),
                    )
                    try:
                        result = await item.seeder.run(ctx)
                    except Exception as exc:
                        message = mask_url_password(one_line(exc))
                        raise SeedError(f"{item.label} failed: {message}; nothing was written") from exc
                if not isinstance(result, SeedResult):
                    raise SeedError(f"{item.label} returned {result!r}, not a SeedResult; nothing was written")
                results[item.seeder.name] = result
                reports.append(Report(item, result, time.perf_counter() - started))
        return emptied, reports
    finally:
        await engine.dispose()


def summary(reports: Sequence[Report], seconds: float, seed: int) -> list[str]:
    """One line per table (rows, the seconds its seeder took), then the totals."""
    lines: list[str] = []
    width = max((len(t) for r in reports for t in r.result.counts), default=5)
    for report in reports:
        tables = list(report.result.counts)
        shared = f"  ({report.seeder.seeder.name} seeder: {', '.join(tables)})" if len(tables) > 1 else ""
        for table, rows in report.result.counts.items():
            lines.append(f"{table:<{width}}  {rows:>12,} rows  {report.seconds:8.2f}s{shared}")
    total = sum(rows for r in reports for rows in r.result.counts.values())
    rate = f" ({total / seconds:,.0f} rows/s)" if seconds > 0 else ""
    lines.append(f"seeded {total:,} rows in {seconds:.2f}s{rate} with --seed {seed}")
    return lines
