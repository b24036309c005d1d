"""Unavailable is 503, always: a database, Redis or broker that cannot be used now answers
503 + Retry-After with a short JSON reason (no user, password, host or port), on every
path, never a 500 or a traceback page. Plus ``check``'s warning when every worker's pools
need more connections than the PostgreSQL server allows (``db.W001``).

The database faults are real, on a private PostgreSQL cluster (``max_connections = 20``,
a role that must give its password over TCP, a NOLOGIN role); Redis's on a private
``redis-server --requirepass``; the broker's on a free port and on RabbitMQ with a wrong
password. SQLite: a file locked by another writer, a path that cannot be opened.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis as redis_sync
from click.testing import CliRunner
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from fastplug.core import PluginInfo, hookimpl
from fastplug.core.cli import cli
from fastplug.core.testing import require_service, require_tool
from fastplug.plugins.db.api import (
    DatabaseUnavailable,
    DbReadConnection,
    DbReadSession,
    DbSession,
    RawConnection,
    RawPool,
    unavailable,
)
from fastplug.plugins.db.errors import reraise_os_error
from fastplug.plugins.redis.api import RedisClient
from fastplug.plugins.tasks.api import Tasks
from tests.conftest import free_port, wait_for
from tests.test_db_unavailable import PrivatePostgres, private_cluster, through_sqlalchemy
from tests.test_serve import serve_process, stop, wait_ready

Make = Callable[..., FastAPI]
RETRY_AFTER = "7"  # the db plugin's [db] retry_after, not core's 1
ROLE, PASSWORD, DATABASE = "fp_shop_role", "s3cret-Pw-fp", "fp_shop_db"
LOCKED_OUT = "fp_locked_role"  # NOLOGIN
REDIS_PASSWORD = "r3dis-Pw-fp"
USER = {"email": "ada@example.com", "name": "Ada"}
DB_PLUGINS = ["health", "db", "cache", "tasks", "users", "products", "orders", "probe"]


# --- routes on every path ---------------------------------------------------------------

router = APIRouter(prefix="/probe")


@router.get("/session")
async def on_session(session: DbSession) -> int:
    return int(await session.scalar(text("SELECT 1")) or 0)


@router.get("/read-session")
async def on_read_session(session: DbReadSession) -> int:
    return int(await session.scalar(text("SELECT 1")) or 0)


@router.get("/read-connection")
async def on_read_connection(connection: DbReadConnection) -> int:
    return int(await connection.scalar(text("SELECT 1")) or 0)


@router.get("/raw")
async def on_raw_connection(connection: RawConnection) -> int:
    return int(await connection.fetchval("SELECT 1"))


@router.get("/raw-pool")
async def on_raw_pool(pool: RawPool) -> int:
    return int(await pool.fetchval("SELECT 1"))


@router.get("/redis")
async def on_redis(redis: RedisClient) -> str:
    return str(await redis.get("fp:unavailable:probe"))


@router.post("/delay")
async def on_delay(tasks: Tasks) -> str:
    return str((await tasks.delay("fp.unavailable.probe", 1)).id)


class Probe:
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="probe")

    @hookimpl
    def register_routers(self) -> list[APIRouter]:
        return [router]


SESSION_PATHS = [  # the SQLAlchemy engine's pool, reads and writes
    ("POST", "/users"),
    ("GET", "/orders/1"),
    ("GET", "/probe/session"),
    ("GET", "/probe/read-session"),
    ("GET", "/probe/read-connection"),
]
RAW_PATHS = [  # the raw asyncpg pool: the shipped read routes (ReadQuery) and the dependencies
    ("GET", "/users/1"),
    ("GET", "/users"),
    ("GET", "/products/1"),
    ("GET", "/probe/raw"),
    ("GET", "/probe/raw-pool"),
]


def ask(client: TestClient | httpx.Client, method: str, path: str) -> httpx.Response:
    return client.request(method, path, json=USER if path == "/users" else None)


def assert_503(
    response: httpx.Response, detail: str, retry_after: str = RETRY_AFTER, secrets: tuple[str, ...] = ()
) -> None:
    where = (response.request.method, response.request.url.path, response.status_code, response.text)
    assert response.status_code == 503, where
    assert response.headers["retry-after"] == retry_after, where
    assert response.headers["content-type"] == "application/json", where
    assert response.json() == {"detail": detail}, where
    assert "Traceback" not in response.text, where
    for secret in secrets:
        assert secret not in response.text, (secret, where)


# --- a private PostgreSQL cluster ---------------------------------------------------------


class Cluster:
    """The private cluster: ``url(...)`` builds the app's URL to it."""

    def __init__(self, pg: PrivatePostgres) -> None:
        self.pg, self.port = pg, pg.port
        self.secrets = (ROLE, PASSWORD, DATABASE, "127.0.0.1", str(pg.port))

    def url(self, role: str = ROLE, password: str | None = PASSWORD, database: str = DATABASE, query: str = "") -> str:
        auth = role if password is None else f"{role}:{password}"
        return f"postgresql+asyncpg://{auth}@127.0.0.1:{self.port}/{database}{query}"

    def admin(self, *statements: str) -> None:
        async def run() -> None:
            connection = await asyncpg.connect(self.pg.dsn)
            try:
                for statement in statements:
                    await connection.execute(statement)
            finally:
                await connection.close()

        asyncio.run(run())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """20 connections, 3 reserved for superusers; ``ROLE`` must give its password (scram)
    over TCP, the admin (``postgres``) is trusted."""
    with private_cluster() as pg:
        pg.initdb()
        hba = pg.data / "pg_hba.conf"  # first match wins: the app's role is checked, the rest trusted
        hba.write_text(f"host all {ROLE},{LOCKED_OUT} 127.0.0.1/32 scram-sha-256\n{hba.read_text()}")
        pg.start("-c max_connections=20", "-c superuser_reserved_connections=3")
        cluster = Cluster(pg)
        cluster.admin(
            f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE ROLE {LOCKED_OUT} NOLOGIN PASSWORD '{PASSWORD}'",
            f"CREATE DATABASE {DATABASE} OWNER {ROLE}",
        )
        yield cluster


@pytest.fixture
def make(fastplug_app_factory: Make) -> Make:
    def build(url: str, **db: Any) -> FastAPI:
        conf = {"url": url, "retry_after": int(RETRY_AFTER), "pool_timeout": 3.0, "connect_timeout": 2.0, **db}
        return fastplug_app_factory(
            plugins=DB_PLUGINS,
            extra_plugins={"probe": Probe()},
            db=conf,
            tasks={"embedded_worker": False},
        )

    return build


@pytest.fixture(scope="module")
def migrated(cluster: Cluster) -> Cluster:
    """The shop's schema in the cluster's database (so that the right password answers)."""
    from fastplug.core.app import build_app
    from fastplug.core.bootstrap import load

    root = Path(tempfile.mkdtemp(prefix="fastplug-unavailable-"))
    try:
        settings_file = root / "settings.toml"
        settings_file.write_text('[default]\nplugins = ["health"]\n')
        overrides = {"plugins": DB_PLUGINS, "db": {"url": cluster.url(), "auto_migrate": True}}
        app = build_app(*load(settings_file, None, overrides, {"probe": Probe()}))
        with TestClient(app) as client:
            assert client.post("/users", json=USER).status_code == 201
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return cluster


@pytest.mark.slow
def test_the_right_password_answers(make: Make, migrated: Cluster) -> None:
    """The control: the same app, the same routes, the right credentials."""
    with TestClient(make(migrated.url())) as client:
        for method, path in SESSION_PATHS + RAW_PATHS:
            response = ask(client, method, path)
            assert response.status_code in (200, 404, 409), (method, path, response.status_code, response.text)


FAULTS = {  # (url arguments, the 503's detail)
    "wrong password": ({"password": "not-the-password"}, "database unavailable: authentication failed"),
    "no password": ({"password": None}, "database unavailable: authentication failed"),
    "NOLOGIN role": ({"role": LOCKED_OUT}, "database unavailable: authentication failed"),
    "unknown database": ({"database": "fp_no_such_db"}, "database unavailable: unknown database"),
    "TLS refused": ({"query": "?ssl=require"}, "database unavailable: connection failed"),
}


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "detail"), list(FAULTS.values()), ids=list(FAULTS))
def test_a_database_that_refuses_the_app_is_503_on_every_path(
    make: Make, migrated: Cluster, fault: dict[str, Any], detail: str
) -> None:
    with TestClient(make(migrated.url(**fault))) as client:
        for method, path in SESSION_PATHS + RAW_PATHS:
            assert_503(ask(client, method, path), detail, secrets=migrated.secrets)
        assert client.get("/health/live").status_code == 200


UNREACHABLE = {  # (address, the details its 503 may give)
    "connection refused": ("127.0.0.1:{free}", ("database unavailable: connection refused",)),
    # a resolver that hangs instead of answering "no such host" is as unavailable (a timeout)
    "DNS failure": (
        "fp-no-such-host.invalid:5432",
        (
            "database unavailable: host not found",
            "database unavailable: connection timed out",
            "database busy: no connection available",
        ),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(("address", "details"), list(UNREACHABLE.values()), ids=list(UNREACHABLE))
def test_a_database_that_cannot_be_reached_is_503_on_every_path(
    make: Make, address: str, details: tuple[str, ...]
) -> None:
    address = address.format(free=free_port())
    with TestClient(make(f"postgresql+asyncpg://{ROLE}:{PASSWORD}@{address}/{DATABASE}")) as client:
        for method, path in SESSION_PATHS + RAW_PATHS:
            response = ask(client, method, path)
            detail = response.json().get("detail") if response.status_code == 503 else None
            assert detail in details, (path, response.text)
            assert_503(response, detail, secrets=(ROLE, PASSWORD, address))


async def _hold_every_slot(cluster: Cluster, held: list[Any]) -> None:
    """Open connections as the app's role until the server says ``too many clients``."""
    dsn = f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{cluster.port}/{DATABASE}"
    while len(held) < 40:  # bounded: 17 slots
        try:
            held.append(await asyncpg.connect(dsn))
        except asyncpg.TooManyConnectionsError:
            return
    raise AssertionError("the server never refused a connection")


@pytest.mark.slow
def test_too_many_clients_is_503_on_every_path(make: Make, migrated: Cluster) -> None:
    loop = asyncio.new_event_loop()
    held: list[Any] = []
    try:
        loop.run_until_complete(_hold_every_slot(migrated, held))
        assert 0 < len(held) <= 17  # 20 - 3 reserved for superusers
        with TestClient(make(migrated.url())) as client:
            for method, path in SESSION_PATHS + RAW_PATHS:
                detail = "database unavailable: too many connections"
                assert_503(ask(client, method, path), detail, secrets=migrated.secrets)
    finally:
        for connection in held:
            loop.run_until_complete(connection.close())
        loop.close()


@pytest.mark.slow
def test_the_real_server_answers_a_wrong_password_with_a_json_503_not_a_traceback(
    migrated: Cluster, tmp_path: Path
) -> None:
    """``manage.py serve``, debug on (where an unhandled error would be a traceback page)."""
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[default]\n"
        'plugins = ["health", "db", "cache", "tasks", "users", "products", "orders"]\n'
        "debug = true\n"
        "[default.db]\n"
        f'url = "{migrated.url(password="not-the-password")}"\n'
        f"retry_after = {RETRY_AFTER}\n"
        "[default.tasks]\n"
        "embedded_worker = false\n"
    )
    proc, base = serve_process(settings, dict(os.environ))
    try:
        wait_ready(proc, f"{base}/health/live")
        with httpx.Client(base_url=base, timeout=10, headers={"accept": "text/html,*/*"}) as client:
            for method, path in [("GET", "/users/1"), ("GET", "/products/1"), ("POST", "/users"), ("GET", "/orders/1")]:
                assert_503(
                    ask(client, method, path), "database unavailable: authentication failed", secrets=migrated.secrets
                )
    finally:
        code, stderr = stop(proc)
    assert code == 0, stderr
    assert "not-the-password" not in stderr and "Traceback" not in stderr, stderr


# --- SQLite ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_sqlite_locked_by_another_writer_is_503_for_writes(make: Make, tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    url = f"sqlite+aiosqlite:///{path}"
    with TestClient(make(url, auto_migrate=True)):
        pass  # the schema
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another process writing: no other writer until it ends
        with TestClient(make(url, auto_migrate=False, connect_timeout=0.2)) as client:
            assert_503(client.post("/users", json=USER), "database unavailable: locked", secrets=(str(path),))
            assert client.get("/users/1").status_code == 404  # WAL: reads go on
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.slow
def test_sqlite_file_that_cannot_be_opened_is_503(make: Make, tmp_path: Path) -> None:
    path = tmp_path / "a-directory.db"
    path.mkdir()
    with TestClient(make(f"sqlite+aiosqlite:///{path}", auto_migrate=False)) as client:
        for method, path_ in [("GET", "/users/1"), ("POST", "/users"), ("GET", "/probe/read-session")]:
            assert_503(
                ask(client, method, path_), "database unavailable: cannot open the database file", secrets=(str(path),)
            )


# --- the classification, on the real exception classes -----------------------------------

DETAILS = {
    "28P01": (asyncpg.InvalidPasswordError('password authentication failed for user "app"'), "authentication failed"),
    "28000": (asyncpg.InvalidAuthorizationSpecificationError('role "app" is not permitted'), "authentication failed"),
    "3D000": (asyncpg.exceptions.InvalidCatalogNameError('database "app" does not exist'), "unknown database"),
    "53300": (asyncpg.TooManyConnectionsError("sorry, too many clients already"), "too many connections"),
    "57P03": (asyncpg.CannotConnectNowError("the database system is starting up"), "starting up or shutting down"),
    "57P01": (asyncpg.AdminShutdownError("terminating connection due to administrator command"), "shutting down"),
    "08006": (asyncpg.exceptions.ConnectionFailureError("connection failure"), "connection failed"),
    "refused": (ConnectionRefusedError(111, "Connect call failed ('10.0.0.1', 5432)"), "connection refused"),
    "reset": (ConnectionResetError(104, "Connection reset by peer"), "connection failed"),
    "DNS": (socket.gaierror(-2, "Name or service not known"), "host not found"),
    "TLS": (ssl.SSLCertVerificationError(1, "certificate verify failed"), "TLS failed"),
    "timeout": (TimeoutError(), "connection timed out"),
}


@pytest.mark.parametrize(("error", "reason"), list(DETAILS.values()), ids=list(DETAILS))
def test_each_cause_has_a_short_reason_raw_and_through_sqlalchemy(error: Exception, reason: str) -> None:
    for seen in (error, through_sqlalchemy(error)) if type(error).__module__.startswith("asyncpg") else (error,):
        down = unavailable(seen)
        assert isinstance(down, DatabaseUnavailable) and down.detail == f"database unavailable: {reason}"


def test_a_bare_os_error_is_unavailable_only_when_the_driver_raised_it() -> None:
    raising: dict[str, Any] = {"__name__": "asyncpg.connect_utils"}
    exec("def connect():\n    raise ConnectionRefusedError(111, 'Connect call failed')", raising)
    with pytest.raises(DatabaseUnavailable) as caught:
        try:
            raising["connect"]()
        except OSError as exc:
            reraise_os_error(exc)
    assert caught.value.detail == "database unavailable: connection refused"
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    with pytest.raises(ConnectionRefusedError):  # another service's: not the database's
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except OSError as exc:
            reraise_os_error(exc)


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture
def locked_redis() -> Iterator[int]:
    """A private ``redis-server --requirepass`` on a free port; its port."""
    binary = require_tool("redis-server")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*argv, "--requirepass", REDIS_PASSWORD], stdout=subprocess.DEVNULL)
    try:
        client = redis_sync.Redis(port=port, password=REDIS_PASSWORD, socket_connect_timeout=0.2)
        wait_for(lambda: _pings(client), "the private redis-server")
        client.close()
        yield port
    finally:
        proc.kill()
        proc.wait()


def _pings(client: redis_sync.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis_sync.ConnectionError:
        return False


@pytest.fixture
def redis_app(fastplug_app_factory: Make, tmp_path: Path) -> Make:
    """The shop on SQLite, its cache on Redis with ``fail_open = false``."""

    def build(redis_url: str) -> FastAPI:
        return fastplug_app_factory(
            plugins=["health", "db", "redis", "cache", "tasks", "users", "products", "orders", "probe"],
            extra_plugins={"probe": Probe()},
            db={"url": f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}", "auto_migrate": True},
            redis={"url": redis_url, "retry": {"retries": 0}},
            cache={"backend": "redis", "fail_open": False},
            tasks={"embedded_worker": False},
        )

    return build


REDIS_FAULTS = {
    "wrong password": ("redis://:not-the-password@127.0.0.1:{port}/0", "authentication failed"),
    "no password": ("redis://127.0.0.1:{port}/0", "authentication failed"),
    "unreachable": ("redis://:not-the-password@127.0.0.1:{free}/0", "connection failed"),
}


@pytest.mark.slow
@pytest.mark.parametrize(("url", "reason"), list(REDIS_FAULTS.values()), ids=list(REDIS_FAULTS))
def test_redis_that_refuses_or_is_gone_is_503_for_the_cache_and_the_dependency(
    redis_app: Make, locked_redis: int, url: str, reason: str
) -> None:
    redis_url = url.format(port=locked_redis, free=free_port())
    secrets = ("not-the-password", REDIS_PASSWORD, str(locked_redis), "127.0.0.1")
    with TestClient(redis_app(redis_url)) as client:
        for path in ("/products/1", "/products"):  # cached routes: fail_open = false
            assert_503(client.get(path), "cache unavailable", retry_after="1", secrets=secrets)
        assert_503(client.get("/probe/redis"), f"redis unavailable: {reason}", retry_after="1", secrets=secrets)


@pytest.mark.slow
def test_redis_with_the_right_password_answers(redis_app: Make, locked_redis: int) -> None:
    with TestClient(redis_app(f"redis://:{REDIS_PASSWORD}@127.0.0.1:{locked_redis}/0")) as client:
        assert client.get("/products/1").status_code == 404
        assert client.get("/probe/redis").json() == "None"


# --- the broker -----------------------------------------------------------------------------


@pytest.fixture
def broker_app(fastplug_app_factory: Make, tmp_path: Path) -> Make:
    def build(broker_url: str) -> FastAPI:
        return fastplug_app_factory(
            plugins=["health", "db", "tasks", "users", "products", "orders", "probe"],
            extra_plugins={"probe": Probe()},
            db={"url": f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}", "auto_migrate": True},
            tasks={"broker_url": broker_url, "embedded_worker": False, "publish_timeout": 3.0},
        )

    return build


def _order(client: TestClient) -> httpx.Response:
    user = client.post("/users", json=USER).json()["id"]
    product = {"sku": "FP-1", "name": "Mug", "category": "kitchen", "price": "4.00", "stock": 5}
    product_id = client.post("/products", json=product).json()["id"]
    return client.post("/orders", json={"user_id": user, "items": [{"product_id": product_id, "quantity": 1}]})


@pytest.mark.slow
def test_an_unreachable_broker_is_503_on_a_publishing_route_and_the_outbox_still_takes_orders(
    broker_app: Make,
) -> None:
    port = free_port()
    with TestClient(broker_app(f"amqp://guest:guest@127.0.0.1:{port}//")) as client:
        assert_503(client.post("/probe/delay"), "broker unavailable", retry_after="1", secrets=("guest", str(port)))
        assert _order(client).status_code == 201  # enqueued in the outbox: delivered once the broker is back


@pytest.mark.slow
def test_a_broker_that_refuses_the_password_is_503(broker_app: Make, locked_redis: int) -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    for url in (
        "amqp://guest:not-the-password@127.0.0.1:5672//",
        f"redis://:not-the-password@127.0.0.1:{locked_redis}/1",
    ):
        with TestClient(broker_app(url)) as client:
            assert_503(
                client.post("/probe/delay"), "broker unavailable", retry_after="1", secrets=("not-the-password",)
            )


# --- check: the pools against max_connections ------------------------------------------------


def _check(tmp_path: Path, cluster: Cluster, workers: int, raw_pool: bool = True) -> tuple[int, str]:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[default]\nplugins = ["health", "db"]\n'
        f"[default.server]\nworkers = {workers}\n"
        f'[default.db]\nurl = "{cluster.url()}"\npool_size = 5\nmax_overflow = 2\n'
        f"raw_pool = {{ enabled = {str(raw_pool).lower()}, max_size = 2 }}\n"
    )
    result = CliRunner().invoke(cli, ["--settings", str(settings), "check"], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.slow
def test_check_warns_when_the_workers_pools_exceed_max_connections(tmp_path: Path, cluster: Cluster) -> None:
    code, out = _check(tmp_path, cluster, workers=2)
    assert code == 0, out  # a warning, not an error
    assert (
        "db: (db.W001) [server] workers 2 x ([db] pool_size 5 + max_overflow 2 + raw_pool.max_size 2) = 18 "
        "connections, more than the database server allows (max_connections 20 - 3 reserved = 17)"
    ) in out, out
    assert PASSWORD not in out
    code, out = _check(tmp_path, cluster, workers=2, raw_pool=False)  # 2 x 7 = 14: fits
    assert code == 0 and "db.W001" not in out, out
    code, out = _check(tmp_path, cluster, workers=1)  # 9: fits
    assert code == 0 and "db.W001" not in out, out


@pytest.mark.slow
def test_check_says_nothing_of_the_pools_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    url = f"postgresql+asyncpg://{ROLE}:{PASSWORD}@127.0.0.1:{free_port()}/{DATABASE}"
    settings.write_text(
        f'[default]\nplugins = ["health", "db"]\n[default.server]\nworkers = 64\n[default.db]\nurl = "{url}"\n'
    )
    result = CliRunner().invoke(cli, ["--settings", str(settings), "check"], catch_exceptions=False)
    assert result.exit_code == 1 and "db.E001" in result.output and "db.W001" not in result.output, result.output
