"""Read queries at the driver's speed: a Core ``SELECT`` compiled once, run on the raw asyncpg
pool when the app has one (PostgreSQL), through SQLAlchemy otherwise (SQLite, or a statement
the driver cannot run as is). Rows come back as dicts, ready for ``fastplug.core.serializer``::

    from fastplug.plugins.db.api import DbReader, ReadQuery

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
``X-DB-Queries`` like the others. A database that cannot answer is a
:class:`~fastplug.plugins.db.errors.DatabaseUnavailable` (or a driver error the db plugin's
handlers classify) on either path: 503 + Retry-After.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select, sqltypes

from fastplug.core import records, service
from fastplug.plugins.db.errors import reraise_os_error
from fastplug.plugins.db.gate import NO_GATE
from fastplug.plugins.db.keys import READER
from fastplug.plugins.db.rawpool import BoundedPool
from fastplug.plugins.db.replicas import Replica, Replicas, on_replica

_DIALECT = asyncpg_dialect()


class Reader:
    """Where read queries run: the raw pool (or ``None``), the autocommit engine, the
    request gate, the query counter (a callable adding one, or ``None``), and the read
    replicas of ``[db] read_urls`` (or ``None``), taken before the primary."""

    __slots__ = ("count", "engine", "gate", "raw", "replicas")

    def __init__(
        self,
        raw: BoundedPool | None,
        engine: AsyncEngine,
        gate: Any = NO_GATE,
        count: Any = None,
        replicas: Replicas | None = None,
    ) -> None:
        self.raw, self.engine, self.gate, self.count = raw, engine, gate, count
        self.replicas = replicas


DbReader = service(READER, Reader)
"""The :class:`Reader` for handlers: ``async def h(..., db: DbReader)``."""


class ReadQuery:
    """One ``SELECT`` (with ``bindparam``s), compiled for asyncpg once; build it at import."""

    __slots__ = ("_args", "_raw", "_sql", "keys", "statement")

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.keys = tuple(statement.selected_columns.keys())
        compiled = statement.compile(dialect=_DIALECT)
        self._sql = str(compiled)
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        # (name, value, required): literals (``col > 0``, ``.limit(10)``) carry their value
        self._args = tuple((name, bind.value, bind.required) for name, bind in zip(names, binds, strict=True))
        runs_as_is = "POSTCOMPILE" not in self._sql and not any(
            bind.callable is not None or bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT) is not None
            for bind in binds
        )
        # per raw pool: do its column types give asyncpg's values unchanged? (checked on first use)
        self._raw: WeakKeyDictionary[BoundedPool, bool] | None = WeakKeyDictionary() if runs_as_is else None

    async def all(self, reader: Reader, /, **params: Any) -> list[dict[str, Any]]:
        """Every row, as dicts keyed by the selected columns' keys (on a replica when
        ``[db] read_urls`` has a usable one and the request has no write session)."""
        replicas = reader.replicas
        if replicas is None:
            return await self._all(reader.raw, reader.engine, reader, params)

        def run(replica: Replica | None) -> Any:
            if replica is None:
                return self._all(reader.raw, reader.engine, reader, params)
            return self._all(replica.raw, replica.read_engine, reader, params)

        return await on_replica(replicas, None, run)  # type: ignore[no-any-return]

    async def _all(
        self, raw: BoundedPool | None, engine: AsyncEngine, reader: Reader, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        decided = self._raw
        if raw is not None and decided is not None and decided.get(raw, True):
            async with raw.acquire() as connection:
                same = decided.get(raw)
                if same is None:
                    same = decided[raw] = self._same_values(await connection.prepare(self._sql))
                if same:
                    if reader.count is not None:
                        reader.count()
                    args = [params[n] if required else params.get(n, value) for n, value, required in self._args]
                    return records(await connection.fetch(self._sql, *args), self.keys)
        async with reader.gate:
            try:
                async with engine.connect() as connection:
                    rows = (await connection.execute(self.statement, params)).all()
            except OSError as exc:  # the driver's, bare: connect refused, DNS, TLS, timeout
                reraise_os_error(exc)
        return records(rows, self.keys)

    async def first(self, reader: Reader, /, **params: Any) -> dict[str, Any] | None:
        """The first row, or ``None`` (give the statement a ``LIMIT`` when it may match many)."""
        rows = await self.all(reader, **params)
        return rows[0] if rows else None

    def _same_values(self, prepared: Any) -> bool:
        """True when SQLAlchemy would hand back asyncpg's values unchanged for every column.
        JSON is decoded by a codec the dialect sets on its own connections, not by a result
        processor, so it never takes the raw path."""
        for column, attribute in zip(self.statement.selected_columns, prepared.get_attributes(), strict=True):
            if isinstance(column.type, sqltypes.JSON) or attribute.type.name in ("json", "jsonb"):
                return False
            impl = column.type.dialect_impl(_DIALECT)
            if impl.result_processor(_DIALECT, attribute.type.oid) is not None:
                return False
        return True
