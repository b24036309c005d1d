"""``[db]`` settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fastplug.config import PluginSettings

APP_BRANCH = "app"  # the Alembic branch of the app's own migrations (not a plugin's)


class RawPoolSettings(BaseModel):
    """A raw asyncpg pool beside the engine (PostgreSQL URLs only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    min_size: int = Field(2, ge=0)
    max_size: int = Field(10, ge=1)
    max_inactive_connection_lifetime: float = Field(300.0, ge=0)


class DbSettings(PluginSettings):
    """The engine, its pool and migrations."""

    url: str = Field(
        "sqlite+aiosqlite:///./var/fastplug.db",
        description="an async driver URL; a relative SQLite path is relative to settings.toml",
    )
    pool_size: int = Field(20, ge=1)
    max_overflow: int = Field(30, ge=0)
    pool_timeout: float = Field(5.0, gt=0, description="seconds to wait for a connection before answering 503")
    pool_recycle: int = Field(1800, ge=-1, description="seconds before a connection is replaced (-1: never)")
    pool_pre_ping: bool = Field(True, description="replace connections the server closed before they are used")
    pre_ping_idle: float = Field(10.0, ge=0, description="also ping connections idle longer than this, seconds")
    connect_timeout: float = Field(5.0, gt=0)
    statement_timeout_ms: int | None = Field(30_000, ge=1, description="PostgreSQL statement_timeout")
    echo: bool = False
    raw_pool: RawPoolSettings = Field(default_factory=RawPoolSettings)
    transaction_pooler: bool = Field(
        False,
        description="url and read_urls go through PgBouncer in transaction mode (pool_mode = transaction): "
        "no statement cache, unique statement names, every statement in a transaction; statement_timeout "
        "is not sent when connecting (set it on the role)",
    )
    read_urls: list[str] = Field(
        default_factory=list,
        description="PostgreSQL replicas (streaming standbys) for the read paths: DbReadSession, "
        "DbReadConnection, DbReader; writes and DbSession stay on url",
    )
    replica_max_lag: float = Field(
        10.0, gt=0, description="seconds of replay lag past which a replica is left out (reads go elsewhere)"
    )
    replica_check_interval: float = Field(2.0, gt=0, description="seconds between two lag checks of each replica")
    replica_retry: float = Field(
        5.0, gt=0, description="seconds a replica that failed a connection is left out before it is tried again"
    )
    auto_migrate: bool | None = Field(
        None, description="upgrade the schema at startup (default: on for SQLite, off otherwise)"
    )
    migrations_dir: str = Field("migrations", description="the app's own Alembic versions, beside settings.toml")
    query_count_header: bool = Field(False, description="add X-DB-Queries to responses (debugging, tests)")
    retry_after: int = Field(1, ge=0, description="Retry-After seconds on a 503 from the database")
    resolve_lost_commits: bool = Field(
        True,
        description="PostgreSQL: when the answer to COMMIT is lost, ask txid_status() whether it committed "
        "(one more round trip per write transaction; off: such a request answers 503 though it may have committed)",
    )

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return async_url(value)

    @field_validator("read_urls")
    @classmethod
    def _replicas(cls, value: list[str]) -> list[str]:
        from sqlalchemy.engine import make_url

        for item in value:
            async_url(item)
            if make_url(item).get_backend_name() != "postgresql":
                raise ValueError("read replicas are PostgreSQL standbys: postgresql+asyncpg://user@replica/db")
        return value

    @model_validator(mode="after")
    def _replicas_of_postgres(self) -> DbSettings:
        from sqlalchemy.engine import make_url

        if self.read_urls and make_url(self.url).get_backend_name() != "postgresql":
            raise ValueError("read_urls needs url to be a PostgreSQL primary (postgresql+asyncpg://...)")
        return self


def async_url(value: str) -> str:
    """``value`` when it is a database URL with an async driver, else a ValueError saying why."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    examples = "use postgresql+asyncpg://user@host/db or sqlite+aiosqlite:///path.db"
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # ValueError quotes a part of the URL: maybe of its password
        raise ValueError(
            f"not a database URL ({examples}; percent-encode @ : / ? # in a password, e.g. @ as %40)"
        ) from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database '{url.drivername}' ({examples})") from None
    if not getattr(dialect, "is_async", False):
        raise ValueError(f"'{url.drivername}' is not an async driver ({examples})")
    return value
