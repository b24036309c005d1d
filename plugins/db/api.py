"""The db plugin's public API: what other plugins and apps build on.

Importable while the db plugin is disabled (nothing here connects or starts anything)::

    from fastplug.plugins.db.api import Base, DbSession

    class Widget(Base):
        __tablename__ = "widgets"
        id: Mapped[int] = mapped_column(primary_key=True)

    @router.get("/widgets/{widget_id}")
    async def get_widget(widget_id: int, session: DbSession) -> WidgetOut: ...

* models: :class:`Base` (relationships default to ``lazy="raise"``: no hidden N+1);
* per-request dependencies: :data:`DbSession` (committed or rolled back),
  :data:`DbReadSession`, :data:`DbReadConnection`, :data:`DbEngine`, :data:`RawPool`,
  :data:`RawConnection`;
* reads at the driver's speed: :class:`ReadQuery` run on :data:`DbReader`;
* seed data for ``manage.py db seed``: :class:`Seeder`, :class:`SeedContext`, :class:`SeedResult`
  (returned from the ``register_seeders`` hook);
* the service keys of what the db plugin's lifespan yields (``services[ENGINE]``...;
  ``services[REPLICAS]``: the read replicas of ``[db] read_urls``, when set);
* database unavailability: :class:`DatabaseUnavailable` (503 + Retry-After), and
  :func:`unavailable` / :func:`describe_error` that tell it from other database errors.
"""

from fastplug.plugins.db.base import NAMING_CONVENTION, Base
from fastplug.plugins.db.deps import (
    DbEngine,
    DbReadConnection,
    DbReadSession,
    DbSession,
    RawConnection,
    RawPool,
)
from fastplug.plugins.db.errors import DatabaseUnavailable, describe_error, unavailable
from fastplug.plugins.db.gate import NO_GATE, FairGate
from fastplug.plugins.db.keys import (
    ENGINE,
    GATE,
    POOL_STATS,
    QUERIES,
    RAW_POOL,
    READ_ENGINE,
    READER,
    REPLICAS,
    SESSIONMAKER,
)
from fastplug.plugins.db.rawpool import BoundedPool
from fastplug.plugins.db.reads import DbReader, Reader, ReadQuery
from fastplug.plugins.db.seeders import Progress, SeedContext, Seeder, SeedResult

__all__ = [
    "ENGINE",
    "GATE",
    "NAMING_CONVENTION",
    "NO_GATE",
    "POOL_STATS",
    "QUERIES",
    "RAW_POOL",
    "READER",
    "READ_ENGINE",
    "REPLICAS",
    "SESSIONMAKER",
    "Base",
    "BoundedPool",
    "DatabaseUnavailable",
    "DbEngine",
    "DbReadConnection",
    "DbReadSession",
    "DbReader",
    "DbSession",
    "FairGate",
    "Progress",
    "RawConnection",
    "RawPool",
    "ReadQuery",
    "Reader",
    "SeedContext",
    "SeedResult",
    "Seeder",
    "describe_error",
    "unavailable",
]
