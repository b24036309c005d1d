"""``manage.py check`` for the db plugin: the database answers, and the pools of every worker
fit in the connections its server allows (else, under load, ``too many clients``: 503s)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from fastplug.config import Settings
from fastplug.core import CheckError, CheckMessage, CheckWarning, one_line
from fastplug.plugins.db.engine import QueryCounter, create_engine, db_settings, is_postgres
from fastplug.plugins.db.settings import DbSettings


@dataclass(frozen=True, slots=True)
class ServerLimit:
    """What a PostgreSQL server allows: ``max_connections``, of which ``reserved`` are kept
    for superusers (``superuser_reserved_connections``, plus ``reserved_connections`` on
    PostgreSQL 16+)."""

    max_connections: int
    reserved: int

    @property
    def usable(self) -> int:
        """Connections an ordinary role can open."""
        return self.max_connections - self.reserved


async def server_limit(connection: AsyncConnection) -> ServerLimit:
    """The server's connection limit, read on ``connection``."""
    max_connections = int(await connection.scalar(text("SHOW max_connections")))
    reserved = int(await connection.scalar(text("SHOW superuser_reserved_connections")))
    more = await connection.scalar(text("SELECT current_setting('reserved_connections', true)"))  # 16+, else NULL
    return ServerLimit(max_connections, reserved + int(more or 0))


async def probe(conf: DbSettings) -> tuple[str | None, ServerLimit | None]:
    """Why the database cannot be reached (or ``None``), and its server's connection limit
    when it is a reachable PostgreSQL (else ``None``)."""
    try:
        url = make_url(conf.url)
    except Exception as exc:
        return f"invalid url: {one_line(exc)}", None
    if url.get_backend_name() == "sqlite":
        return None, None
    try:
        engine = create_engine(conf.model_copy(update={"pool_size": 1, "max_overflow": 0}), QueryCounter())
    except Exception as exc:
        return one_line(exc), None
    limit = None
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            if is_postgres(url):
                try:
                    limit = await server_limit(connection)
                except Exception:  # a server that will not say (a pooler in front): no advice
                    limit = None
    except Exception as exc:
        return one_line(exc), None
    finally:
        await engine.dispose()
    return None, limit


def connections_per_worker(conf: DbSettings) -> int:
    """The most connections one server process opens: the engine's pool, its overflow, and
    the raw asyncpg pool (PostgreSQL, when enabled)."""
    raw = conf.raw_pool.max_size if conf.raw_pool.enabled and is_postgres(make_url(conf.url)) else 0
    return conf.pool_size + conf.max_overflow + raw


def budget_warning(conf: DbSettings, workers: int, limit: ServerLimit) -> CheckWarning | None:
    """``db.W001`` when ``workers`` processes at their pools' full size need more connections
    than the server lets an ordinary role open."""
    per_worker = connections_per_worker(conf)
    total = workers * per_worker
    if total <= limit.usable:
        return None
    raw = per_worker - conf.pool_size - conf.max_overflow
    pools = f"pool_size {conf.pool_size} + max_overflow {conf.max_overflow}" + (
        f" + raw_pool.max_size {raw}" if raw else ""
    )
    return CheckWarning(
        f"[server] workers {workers} x ([db] {pools}) = {total} connections, more than the database server "
        f"allows (max_connections {limit.max_connections} - {limit.reserved} reserved = {limit.usable}): "
        "under load, requests get 503 (too many connections)",
        "db.W001",
        "lower [db] pool_size, max_overflow or raw_pool.max_size (or [server] workers), "
        "or raise the server's max_connections",
    )


PGBOUNCER_PORT = 6432


def pooler_warnings(conf: DbSettings) -> list[CheckMessage]:
    """``db.W002``: a URL on PgBouncer's port without ``transaction_pooler``; ``db.W003``:
    ``statement_timeout_ms`` with it (not sent through a pooler)."""
    if not is_postgres(make_url(conf.url)):
        return []
    found: list[CheckMessage] = []
    ports = {make_url(url).port for url in (conf.url, *conf.read_urls)}
    if PGBOUNCER_PORT in ports and not conf.transaction_pooler:
        found.append(
            CheckWarning(
                f"[db] url is on port {PGBOUNCER_PORT}, PgBouncer's: in transaction mode (pool_mode = transaction) "
                "prepared statements and autocommit reads fail under load",
                "db.W002",
                "set [db] transaction_pooler = true (or ignore this for session mode)",
            )
        )
    if conf.transaction_pooler and conf.statement_timeout_ms:
        found.append(
            CheckWarning(
                "[db] statement_timeout_ms is not sent through a transaction pooler (PgBouncer refuses it when "
                "connecting)",
                "db.W003",
                f"set it on the role: ALTER ROLE <user> SET statement_timeout = '{conf.statement_timeout_ms}ms'",
            )
        )
    return found


async def checks(settings: Settings) -> Sequence[CheckMessage]:
    """``db.E001`` when the database cannot be reached, ``db.W001`` when the pools do not fit,
    ``db.W002``/``db.W003`` about a transaction pooler."""
    conf = db_settings(settings)
    found = pooler_warnings(conf)
    problem, limit = await probe(conf)
    if problem is not None:
        hint = "is [db] url right and the server up?"
        return [*found, CheckError(f"cannot connect to the database: {problem}", "db.E001", hint)]
    warning = budget_warning(conf, settings.core.server.workers, limit) if limit is not None else None
    return [*found, warning] if warning is not None else found
