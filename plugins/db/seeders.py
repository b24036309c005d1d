"""The seeding contract: plugins fill their tables with realistic data for ``manage.py db seed``.

A plugin returns :class:`Seeder` objects from the db plugin's ``register_seeders(settings)``
hook; each one contributes its click options to ``db seed`` and writes through a
:class:`SeedContext`::

    @hookimpl(optionalhook=True)
    def register_seeders(settings):
        option = click.Option(["--widgets"], type=click.IntRange(0), default=100, help="widgets to create")
        return [Seeder("widgets", seed_widgets, options=(option,), tables=("widgets",))]

    async def seed_widgets(ctx: SeedContext) -> SeedResult:
        ids = await ctx.reserve_ids("widgets", ctx.options["widgets"])
        ctx.progress.start(len(ids))
        for chunk in ctx.batches(ids):
            await ctx.insert("widgets", ("id", "name"), [(i, f"widget {i}") for i in chunk])
            ctx.progress.advance(len(chunk))
        return SeedResult(ids=ids, counts={"widgets": len(ids)})

Every seeder runs in one transaction (a failure rolls all of them back), after the seeders
it names in ``after``. Plugins share data through tables and results
(``ctx.results["users"].ids``), never by importing each other.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import click
from sqlalchemy import Column, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from fastplug.plugins.db.api import Base

_S = TypeVar("_S", bound=Sequence[int])
_IN_CHUNK = 900  # ids per IN (...) list: below SQLite's oldest bound-parameter limit


@dataclass(frozen=True, slots=True)
class SeedResult:
    """What a seeder made: the primary keys of its main table's new rows (for the seeders
    after it) and the rows written per table (for the summary)."""

    ids: Sequence[int] = ()
    counts: Mapping[str, int] = field(default_factory=dict)


class Progress(Protocol):
    """The seeder's progress bar: ``start(total)`` once, then ``advance(n)`` as rows go in."""

    def start(self, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Seeder:
    """One plugin's seeding step.

    ``run`` fills the tables; ``options`` are click options added to ``db seed`` (their
    values arrive in ``ctx.options`` by parameter name); ``after`` names the seeders that
    must run first; ``tables`` are the tables it fills, emptied by ``db seed --truncate``
    (with the tables that reference them).
    """

    name: str
    run: Callable[[SeedContext], Awaitable[SeedResult]]
    options: Sequence[click.Option] = ()
    after: Sequence[str] = ()
    tables: Sequence[str] = ()


@dataclass(slots=True)
class SeedContext:
    """What a seeder writes with: one SQLAlchemy async connection inside the seeding
    transaction, the parsed options, a deterministic ``random``, the results of the
    seeders before it, the batch size and a progress bar."""

    connection: AsyncConnection
    options: Mapping[str, Any]
    random: random.Random
    now: datetime
    """The run's reference time (timezone-aware UTC): seeded timestamps are before it."""
    batch_size: int
    results: Mapping[str, SeedResult]
    progress: Progress

    @property
    def dialect(self) -> str:
        """``"postgresql"``, ``"sqlite"``..."""
        return self.connection.dialect.name

    async def driver_connection(self) -> Any:
        """The driver's own connection (``asyncpg.Connection`` on PostgreSQL), in the same
        transaction as ``connection``."""
        raw = await self.connection.get_raw_connection()
        return raw.driver_connection

    @staticmethod
    def table(name: str) -> Table:
        """The ``Table`` of ``name`` in ``fastplug.plugins.db.api.Base.metadata``."""
        try:
            return Base.metadata.tables[name]
        except KeyError:
            raise LookupError(f"no table '{name}' in the models (is its plugin enabled?)") from None

    def batches(self, items: _S) -> Iterator[_S]:
        """``items`` in consecutive slices of ``batch_size``."""
        for start in range(0, len(items), self.batch_size):
            yield items[start : start + self.batch_size]  # type: ignore[misc]

    async def reserve_ids(self, table: str, n: int) -> Sequence[int]:
        """``n`` new primary keys for ``table`` (a ``range`` unless concurrent inserts split them).

        On PostgreSQL they are drawn from the column's sequence, so rows the app inserts later
        never collide with them (a sequence behind ``max(id)`` is moved past it first).
        Elsewhere they follow ``max(id)``.
        """
        if n <= 0:
            return range(0)
        pk = _primary_key(self.table(table))
        if self.dialect == "postgresql":
            return await self._reserve_from_sequence(pk, n)
        top = await self.connection.scalar(select(func.coalesce(func.max(pk), 0)))
        return range(int(top) + 1, int(top) + 1 + n)

    async def _reserve_from_sequence(self, pk: Column[Any], n: int) -> Sequence[int]:
        quote = self.connection.dialect.identifier_preparer.quote
        sequence = await self.connection.scalar(
            text("SELECT pg_get_serial_sequence(:table, :column)"), {"table": pk.table.name, "column": pk.name}
        )
        if sequence is None:
            raise LookupError(f"{pk.table.name}.{pk.name} has no sequence (not SERIAL or IDENTITY)")
        await self.connection.execute(
            text(
                f"SELECT setval(CAST(:seq AS regclass), top) FROM (SELECT max({quote(pk.name)}) AS top "
                f"FROM {quote(pk.table.name)}) AS t "
                "WHERE top > coalesce(pg_sequence_last_value(CAST(:seq AS regclass)), 0)"
            ),
            {"seq": sequence},
        )
        drawn = await self.connection.scalar(
            text("SELECT array_agg(nextval(CAST(:seq AS regclass))) FROM generate_series(1, :n)"),
            {"seq": sequence, "n": n},
        )
        ids = sorted(int(i) for i in drawn)
        return range(ids[0], ids[-1] + 1) if ids[-1] - ids[0] + 1 == n else ids

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (tuples in ``columns`` order): ``COPY`` on PostgreSQL, one
        ``executemany`` elsewhere. Omitted columns get their defaults."""
        if not rows:
            return
        if self.dialect == "postgresql":
            driver = await self.driver_connection()
            await driver.copy_records_to_table(table, records=rows, columns=list(columns))
            return
        await self.connection.execute(
            self.table(table).insert(), [dict(zip(columns, row, strict=True)) for row in rows]
        )

    async def rows(self, table: str, columns: Sequence[str], ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """``columns`` of the rows of ``table`` whose primary key is in ``ids``, by key."""
        if not ids:
            return []
        t = self.table(table)
        pk = _primary_key(t)
        query = select(*(t.c[name] for name in columns)).order_by(pk)
        if isinstance(ids, range) and ids.step == 1:
            result = await self.connection.execute(query.where(pk.between(ids.start, ids.stop - 1)))
            return [tuple(row) for row in result]
        found: list[tuple[Any, ...]] = []
        ordered = sorted(ids)
        for start in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[start : start + _IN_CHUNK]
            found.extend(tuple(row) for row in await self.connection.execute(query.where(pk.in_(chunk))))
        return found


def _primary_key(table: Table) -> Column[Any]:
    columns = list(table.primary_key.columns)
    if len(columns) != 1:
        raise LookupError(f"table '{table.name}' has no single-column primary key")
    return columns[0]
