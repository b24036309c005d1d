"""Read queries at the driver's speed: a Core ``SELECT`` compiled once, run on the raw asyncpg
pool when the app has one (PostgreSQL), through SQLAlchemy otherwise (SQLite, or a statement
the driver cannot run as is). Rows come back as dicts, ready for ``core.serialize``::

    from core.reads import DbReader, ReadQuery

    ONE = ReadQuery(select(*users.c).where(users.c.id == bindparam("id", type_=Integer)))

    @router.get("/users/{user_id}", response_model=UserOut)
    async def get_user(user_id: int, db: DbReader) -> JsonBytes:
        user = await ONE.first(db, id=user_id)
        ...
        return serializer(UserOut).response(user, from_attributes=True)

Executing a Core statement through SQLAlchemy costs ~280 us of Python per statement here
(cache key, execution context, result object); the same statement on an asyncpg connection
costs ~15 us. The raw path is taken only when it gives the same values: no bind or result
processor on any column for the asyncpg dialect (checked against the real column types on
first use), no parameters expanded at execution time (``IN`` lists). Raw statements count in
``X-DB-Queries`` like the others.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from core.db import NO_GATE, BoundedPool
from core.serialize import records
from core.services import service

READER = "db.reader"
_DIALECT = asyncpg_dialect()


class Reader:
    """Where read queries run: the raw pool (or ``None``), the autocommit engine, the
    request gate, and the query counter (a callable adding one, or ``None``)."""

    __slots__ = ("count", "engine", "gate", "raw")

    def __init__(self, raw: BoundedPool | None, engine: AsyncEngine, gate: Any = NO_GATE, count: Any = None) -> None:
        self.raw, self.engine, self.gate, self.count = raw, engine, gate, count


DbReader = service(READER, Reader)
"""The :class:`Reader` for handlers: ``async def h(..., db: DbReader)``."""


class ReadQuery:
    """One ``SELECT`` (with ``bindparam``s), compiled for asyncpg once; build it at import."""

    __slots__ = ("_names", "_raw", "_sql", "keys", "statement")

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.keys = tuple(statement.selected_columns.keys())
        compiled = statement.compile(dialect=_DIALECT)
        self._sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())
        binds_processed = any(
            bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT) is not None for bind in compiled.binds.values()
        )
        # None: not known yet (the result types are checked on the first raw run)
        self._raw: bool | None = False if binds_processed or "POSTCOMPILE" in self._sql else None

    async def all(self, reader: Reader, /, **params: Any) -> list[dict[str, Any]]:
        """Every row, as dicts keyed by the selected columns' keys."""
        raw = reader.raw
        if raw is not None and self._raw is not False:
            async with raw.acquire() as connection:
                if self._raw is None:
                    self._raw = self._same_values(await connection.prepare(self._sql))
                if self._raw:
                    if reader.count is not None:
                        reader.count()
                    rows = await connection.fetch(self._sql, *[params[name] for name in self._names])
                    return records(rows, self.keys)
        async with reader.gate, reader.engine.connect() as connection:
            result = await connection.execute(self.statement, params)
            return records(result.all(), self.keys)

    async def first(self, reader: Reader, /, **params: Any) -> dict[str, Any] | None:
        """The first row, or ``None`` (give the statement a ``LIMIT`` when it may match many)."""
        rows = await self.all(reader, **params)
        return rows[0] if rows else None

    def _same_values(self, prepared: Any) -> bool:
        """True when SQLAlchemy would hand back asyncpg's values unchanged for every column."""
        for column, attribute in zip(self.statement.selected_columns, prepared.get_attributes(), strict=True):
            impl = column.type.dialect_impl(_DIALECT)
            if impl.result_processor(_DIALECT, attribute.type.oid) is not None:
                return False
        return True
