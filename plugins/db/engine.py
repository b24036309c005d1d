"""The engine: pool sizing, driver options, fork safety, pool figures and query counting."""

from __future__ import annotations

import logging
import os
import time
import uuid
import weakref
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool

from fastplug.config import Settings
from fastplug.plugins.db.errors import describe_error
from fastplug.plugins.db.sessions import note_write
from fastplug.plugins.db.settings import DbSettings

log = logging.getLogger("fastplug.db")


class CountingQueuePool(AsyncAdaptedQueuePool):
    """The async queue pool, counting the tasks waiting for a connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiters = 0

    def _do_get(self) -> Any:
        self.waiters += 1
        try:
            return super()._do_get()
        finally:
            self.waiters -= 1


def pool_stats(engine: AsyncEngine) -> dict[str, int]:
    """Size, checked out, overflow and waiters of the engine's pool (for metrics)."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, AsyncAdaptedQueuePool):
        return {"size": 1, "checked_out": 0, "overflow": 0, "waiters": 0}
    return {
        "size": pool.size(),
        "checked_out": pool.checkedout(),
        "overflow": max(pool.overflow(), 0),
        "waiters": getattr(pool, "waiters", 0),
    }


class QueryCounter:
    """Counts SQL statements per context (a request, a test block) on one engine."""

    def __init__(self) -> None:
        self._cell: ContextVar[list[int] | None] = ContextVar("fastplug_db_queries", default=None)

    def start(self) -> list[int]:
        """Start counting in the current context; the returned cell's ``[0]`` is the count."""
        cell = [0]
        self._cell.set(cell)
        return cell

    def add(self) -> None:
        """Count one statement run outside the engine (the raw pool) in the current context."""
        cell = self._cell.get()
        if cell is not None:
            cell[0] += 1

    def current(self) -> int | None:
        """Statements run so far in this context, or ``None`` when not counting."""
        cell = self._cell.get()
        return cell[0] if cell is not None else None

    def attach(self, engine: AsyncEngine) -> None:
        """Count every statement ``engine`` executes."""
        cell_var = self._cell

        def count(*_: Any) -> None:
            cell = cell_var.get()
            if cell is not None:
                cell[0] += 1

        event.listen(engine.sync_engine, "before_cursor_execute", count)


_ENGINES: weakref.WeakSet[AsyncEngine] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    # A forked child (gunicorn --preload, Celery prefork) must not touch the parent's
    # sockets: drop the pooled connections without closing them (SQLAlchemy's recipe).
    for engine in list(_ENGINES):
        engine.sync_engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_connections_after_fork)


def is_postgres(url: URL) -> bool:
    """True for a PostgreSQL URL."""
    return url.get_backend_name() == "postgresql"


def is_memory_sqlite(url: URL) -> bool:
    """True for an in-memory SQLite database."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (database in ("", ":memory:") or "mode=memory" in database)


def ensure_sqlite_dir(url: URL) -> None:
    """Create the directory of a SQLite database file (``./var/`` on a fresh checkout)."""
    if url.get_backend_name() == "sqlite" and not is_memory_sqlite(url):
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)


def _pool_options(conf: DbSettings) -> dict[str, Any]:
    return {
        "poolclass": CountingQueuePool,
        "pool_size": conf.pool_size,
        "max_overflow": conf.max_overflow,
        "pool_timeout": conf.pool_timeout,
        "pool_recycle": conf.pool_recycle,
    }


def _sqlite_options(url: URL, conf: DbSettings) -> dict[str, Any]:
    if is_memory_sqlite(url):
        # one shared in-memory database: every connection must be the same one
        return {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    ensure_sqlite_dir(url)
    return {**_pool_options(conf), "connect_args": {"timeout": conf.connect_timeout}}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def unique_statement_name() -> str:
    """A prepared statement name no other client of a pooled server connection uses."""
    return f"__fastplug_{uuid.uuid4().hex}__"


def startup_settings(conf: DbSettings, application_name: str) -> dict[str, str]:
    """The server settings sent when connecting. Through a transaction pooler only the
    application name: PgBouncer refuses a connection that sends ``statement_timeout``."""
    server_settings = {"application_name": application_name}
    if conf.statement_timeout_ms and not conf.transaction_pooler:
        server_settings["statement_timeout"] = str(conf.statement_timeout_ms)
    return server_settings


def _postgres_options(conf: DbSettings) -> dict[str, Any]:
    connect_args: dict[str, Any] = {
        "timeout": conf.connect_timeout,
        "server_settings": startup_settings(conf, "fastplug"),
    }
    if conf.transaction_pooler:
        # a statement prepared on one server connection is unknown on the next one PgBouncer
        # gives: nothing kept between transactions, and names that never collide
        connect_args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=unique_statement_name,
        )
    return {**_pool_options(conf), "connect_args": connect_args}


def db_settings(settings: Settings) -> DbSettings:
    """``[db]``, with a relative SQLite path made absolute beside settings.toml (not the
    working directory: ``manage.py --settings ../proj/settings.toml`` finds the same file)."""
    conf = settings.section("db", DbSettings)
    url = make_url(conf.url)
    if url.get_backend_name() != "sqlite" or is_memory_sqlite(url):
        return conf
    path = Path(url.database or "").expanduser()
    if path.is_absolute():
        return conf
    absolute = url.set(database=str((settings.path.parent / path).resolve()))
    return conf.model_copy(update={"url": absolute.render_as_string(hide_password=False)})


def replace_dead_connections(engine: AsyncEngine, idle: float, ping: bool = True) -> None:
    """``pool_pre_ping`` without its round trip on busy connections.

    At checkout a connection whose socket the server closed (a restart, a killed backend)
    is replaced for free (asyncpg knows); one idle for more than ``idle`` seconds is also
    pinged (what a silent network failure needs). SQLAlchemy's own ``pool_pre_ping``
    pings on every checkout: one more round trip per request.
    """
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    @event.listens_for(sync_engine, "connect")
    def fresh(dbapi_connection: Any, record: Any) -> None:
        record.info["fastplug.used"] = time.monotonic()

    @event.listens_for(sync_engine, "checkin")
    def used(dbapi_connection: Any, record: Any) -> None:
        record.info["fastplug.used"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        is_closed = getattr(getattr(dbapi_connection, "driver_connection", None), "is_closed", None)
        if is_closed is not None and is_closed():
            raise DisconnectionError("connection closed by the server")
        if ping and time.monotonic() - record.info.get("fastplug.used", 0.0) > idle:
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise DisconnectionError(f"ping failed: {type(exc).__name__}") from exc


def create_engine(conf: DbSettings, counter: QueryCounter) -> AsyncEngine:
    """The app's engine from ``[db]``; nothing connects until first use."""
    url = make_url(conf.url)
    if url.get_backend_name() == "sqlite":
        options = _sqlite_options(url, conf)
    elif is_postgres(url):
        options = _postgres_options(conf)
    else:
        options = {k: v for k, v in _pool_options(conf).items() if k != "poolclass"}
    engine = create_async_engine(url, echo=conf.echo, hide_parameters=not conf.echo, **options)
    if conf.pool_pre_ping:
        # through a pooler, PgBouncer keeps the server connections healthy; a ping outside a
        # transaction could be parsed on one server connection and run on another
        replace_dead_connections(engine, conf.pre_ping_idle, ping=not conf.transaction_pooler)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    elif is_postgres(url):  # which transactions wrote: their commits are checked (plugins/db/sessions.py)
        event.listen(engine.sync_engine, "before_cursor_execute", note_write)
    counter.attach(engine)
    _ENGINES.add(engine)
    return engine


class OneLineCause(logging.Filter):
    """asyncpg's pool logs each failed attempt to reconnect its ``min_size`` connections with
    a traceback; while the database is down one line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg, record.args = f"{record.getMessage()}: {describe_error(record.exc_info[1])}", None
            record.exc_info = record.exc_text = None
        return True


def quiet_asyncpg_pool_log() -> None:
    """Install :class:`OneLineCause` on asyncpg's pool logger (once per process)."""
    logger = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, OneLineCause) for f in logger.filters):
        logger.addFilter(OneLineCause())


async def create_raw_pool(conf: DbSettings) -> Any:
    """A raw asyncpg pool on the same database (PostgreSQL only), or ``None``."""
    url = make_url(conf.url)
    if not (is_postgres(url) and conf.raw_pool.enabled):
        return None
    import asyncpg

    quiet_asyncpg_pool_log()

    # the engine's own connect arguments (host, port, user, password, database, and the url's
    # query: ssl=..., options SQLAlchemy's dialect passes to asyncpg.connect), not a DSN: asyncpg
    # would read ?ssl=require as a server setting and the database would refuse every connection
    _, params = url.get_dialect()().create_connect_args(url)
    for sqlalchemy_only in ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn"):
        params.pop(sqlalchemy_only, None)
    server_settings = startup_settings(conf, "fastplug-raw")
    if conf.transaction_pooler:
        params["statement_cache_size"] = 0  # unnamed statements, each run in a transaction (rawpool.py)
    options: dict[str, Any] = {
        **params,
        "max_size": conf.raw_pool.max_size,
        "max_inactive_connection_lifetime": conf.raw_pool.max_inactive_connection_lifetime,
        "timeout": conf.connect_timeout,
        "server_settings": server_settings,
    }
    try:
        return await asyncpg.create_pool(min_size=conf.raw_pool.min_size, **options)
    except (OSError, asyncpg.PostgresError) as exc:
        # The database is down: start anyway (routes answer 503, /health/ready says why)
        # with a pool that connects on first use.
        log.warning("db: raw pool could not connect at startup: %s; connecting on first use", describe_error(exc))
        return await asyncpg.create_pool(min_size=0, **options)
