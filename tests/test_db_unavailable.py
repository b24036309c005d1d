"""Every way the database can be unavailable is a 503 + Retry-After with a JSON body, on every
path (session, read session, read connection, raw connection, raw pool, ReadQuery): stopped,
shutting down, starting up (in recovery), the answer to COMMIT lost. Other database errors
are a JSON 500; nothing after an acknowledged commit turns the answer into an error; a
shutdown while the database is down logs a warning, not an error.

The faults are made on a private PostgreSQL cluster (initdb in a temp dir, a free port),
never on the machine's shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from glob import glob
from pathlib import Path
from typing import Any

import asyncpg
import db_notes
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Integer, bindparam, func, insert, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.ext.asyncio import AsyncSession

from fastplug.core import PluginInfo, hookimpl
from fastplug.core.testing import require_service
from fastplug.plugins.db.api import (
    DatabaseUnavailable,
    DbReadConnection,
    DbReader,
    DbReadSession,
    DbSession,
    RawConnection,
    RawPool,
    ReadQuery,
    unavailable,
)
from tests.conftest import free_port, wait_for

Make = Callable[..., FastAPI]
RETRY_AFTER = "7"  # the db plugin's setting, not core's default of 1
AUTHORS = db_notes.Author.__table__
ONE_AUTHOR = ReadQuery(select(AUTHORS.c.id, AUTHORS.c.name).where(AUTHORS.c.id == bindparam("id", type_=Integer)))
SOME_AUTHORS = ReadQuery(
    select(AUTHORS.c.id).where(AUTHORS.c.id.in_(bindparam("ids", expanding=True)))
)  # SQLAlchemy's path


# --- a private PostgreSQL cluster -------------------------------------------------------


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the PostgreSQL server binaries must be installed)", pytrace=False)
    pytest.skip(reason)


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [Path(found).parent] if found else []
    candidates += [Path(p) for p in sorted(glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


class PrivatePostgres:
    """A throwaway cluster in ``root`` on a free port, run as the ``postgres`` user when we are root."""

    def __init__(self, bindir: Path, root: Path, user: pwd.struct_passwd | None) -> None:
        self.bindir, self.root, self.user = bindir, root, user
        self.data = root / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / tool), *args]
        if self.user is not None:
            argv = ["runuser", "-u", self.user.pw_name, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=check)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", "-D", str(self.data), *args, check=check)

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self, *settings: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off {' '.join(settings)}"
        self._pg_ctl("-l", str(self.root / "server.log"), "-w", "-t", "30", "-o", options, "start")

    def stop(self, mode: str = "fast", wait: bool = True) -> None:
        self._pg_ctl("-m", mode, "-w" if wait else "-W", "stop")

    def recovering(self) -> None:
        """Start in recovery that never ends by itself (a standby without a primary, hot
        standby off): every connection is refused with 57P03 until :meth:`promote`."""
        signal_file = self.data / "standby.signal"
        signal_file.touch()
        if self.user is not None:
            os.chown(signal_file, self.user.pw_uid, self.user.pw_gid)
        self.start("-c hot_standby=off")

    def promote(self) -> None:
        self._pg_ctl("-w", "promote")

    def kill(self) -> None:
        """Stop at once (teardown); the postmaster is killed if pg_ctl could not stop it."""
        self._pg_ctl("-m", "immediate", "-w", "stop", check=False)
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivatePostgres]:
    """A private cluster, not yet initialised, killed and removed at the end (skipped, or
    failed under CI, without the server binaries). Its directory is not under ``tmp_path``:
    pytest keeps that private to us, and the server runs as ``postgres``."""
    bindir = _pg_bindir()
    if bindir is None:
        _skip_or_fail("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    assert bindir is not None
    user = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _skip_or_fail("running as root without a 'postgres' user to run the server as")
        if shutil.which("runuser") is None:
            _skip_or_fail("running as root without runuser to start the server as 'postgres'")
    root = Path(tempfile.mkdtemp(prefix="fastplug-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    pg = PrivatePostgres(bindir, root, user)
    try:
        yield pg
    finally:
        pg.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster, started; killed and removed at the end."""
    with private_cluster() as pg:
        pg.initdb()
        pg.start()
        yield pg


class Holder:
    """One connection of our own, held open on its own event loop (a smart shutdown waits for it)."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(asyncpg.connect(dsn))

    def fetch(self, query: str) -> list[Any]:
        return self.loop.run_until_complete(self.connection.fetch(query))

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.connection.close(timeout=5))
        except Exception:
            self.connection.terminate()
        self.loop.close()


def shutting_down(pg: PrivatePostgres) -> Holder:
    """Leave ``pg`` shutting down (smart: it waits for the held connection); new connections
    are refused with 57P03 ("the database system is shutting down")."""
    holder = Holder(pg.dsn)
    pg.stop("smart", wait=False)
    wait_for(lambda: _refused_with(pg.dsn) == "57P03", "the smart shutdown to refuse connections")
    return holder


def _refused_with(dsn: str) -> str | None:
    async def connect() -> str | None:
        try:
            connection = await asyncpg.connect(dsn, timeout=5)
        except asyncpg.PostgresError as exc:
            return exc.sqlstate
        except OSError:
            return "refused"
        await connection.close()
        return None

    return asyncio.run(connect())


# --- an app with a route on every path --------------------------------------------------

router = APIRouter(prefix="/probe")


@router.post("/session", status_code=201)
async def on_session(session: DbSession, name: str) -> dict[str, int]:
    row = await session.execute(insert(AUTHORS).values(name=name).returning(AUTHORS.c.id))
    return {"id": row.scalar_one()}


@router.get("/read-session")
async def on_read_session(session: DbReadSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AUTHORS)) or 0)


@router.get("/read-connection")
async def on_read_connection(connection: DbReadConnection) -> int:
    return int(await connection.scalar(select(func.count()).select_from(AUTHORS)) or 0)


@router.get("/raw")
async def on_raw_connection(connection: RawConnection) -> int:
    return int(await connection.fetchval("SELECT count(*) FROM t_authors"))


@router.get("/raw-pool")
async def on_raw_pool(pool: RawPool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM t_authors"))


@router.get("/read-query/{author_id}")
async def on_read_query(author_id: int, db: DbReader) -> dict[str, Any] | None:
    return await ONE_AUTHOR.first(db, id=author_id)


@router.get("/read-query-sqlalchemy")
async def on_read_query_through_sqlalchemy(db: DbReader) -> list[dict[str, Any]]:
    return await SOME_AUTHORS.all(db, ids=[1, 2])


@router.get("/broken/session")
async def broken_session(session: DbSession) -> None:
    await session.execute(text("SELECT * FROM no_such_table"))


@router.post("/broken/duplicate")
async def broken_duplicate(session: DbSession) -> None:
    await session.execute(insert(AUTHORS).values(name="twice"))
    await session.execute(insert(AUTHORS).values(name="twice"))


@router.get("/broken/raw")
async def broken_raw(connection: RawConnection) -> None:
    await connection.fetchval("SELECT no_such_column FROM t_authors")


@router.get("/broken/read-query")
async def broken_read_query(db: DbReader) -> None:
    await ReadQuery(select(AUTHORS.c.id).where(AUTHORS.c.id == bindparam("id", type_=Integer))).all(db, id="x")


class Probe:
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="probe", requires=("db", "notes"))

    @hookimpl
    def register_routers(self) -> list[APIRouter]:
        return [router]


AVAILABILITY = [  # every path: (method, path) of a request that needs the database
    ("POST", "/probe/session?name=n"),
    ("GET", "/probe/read-session"),
    ("GET", "/probe/read-connection"),
    ("GET", "/probe/raw"),
    ("GET", "/probe/raw-pool"),
    ("GET", "/probe/read-query/1"),
    ("GET", "/probe/read-query-sqlalchemy"),
    ("POST", "/users"),  # the shipped routes: a session, ReadQuery (raw pool or SQLAlchemy)
    ("GET", "/users/1"),
    ("GET", "/users"),
    ("GET", "/products/1"),
    ("GET", "/products"),
]
USER = {"email": "ada@example.com", "name": "Ada"}


@pytest.fixture
def make(fastplug_app_factory: Make) -> Make:
    def build(url: str, **db: Any) -> FastAPI:
        conf = {"url": url, "auto_migrate": True, "retry_after": int(RETRY_AFTER), "pool_timeout": 2.0, **db}
        return fastplug_app_factory(
            plugins=["health", "db", "notes", "users", "products", "probe"],
            extra_plugins={"notes": db_notes, "probe": Probe()},
            db=conf,
        )

    return build


def ask(client: TestClient, method: str, path: str) -> Any:
    return client.request(method, path, json=USER if path == "/users" else None)


def assert_all_unavailable(client: TestClient) -> None:
    for method, path in AVAILABILITY:
        response = ask(client, method, path)
        assert response.status_code == 503, (method, path, response.status_code, response.text)
        assert response.headers["retry-after"] == RETRY_AFTER, (method, path)
        assert response.headers["content-type"] == "application/json", (method, path)
        assert response.json()["detail"].startswith("database"), (method, path, response.json())


def assert_all_answer(client: TestClient) -> None:
    for method, path in AVAILABILITY:
        response = ask(client, method, path.replace("name=n", f"name={os.urandom(4).hex()}"))
        assert response.status_code in (200, 201, 404, 409), (method, path, response.status_code, response.text)


# --- the classification, on the real driver exceptions ------------------------------------

DBAPI = AsyncAdapt_asyncpg_dbapi(asyncpg)


def through_sqlalchemy(error: Exception) -> sa_exc.DBAPIError:
    """``error`` wrapped as SQLAlchemy's asyncpg dialect wraps it."""
    adapted = DBAPI.Error(str(error), error)
    adapted.__cause__ = error
    wrapped = sa_exc.DBAPIError.instance("SELECT 1", None, adapted, DBAPI.Error)
    wrapped.__cause__ = adapted
    return wrapped


def sqlite_error(code: int, message: str) -> Exception:
    import sqlite3

    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return sa_exc.OperationalError("SELECT 1", None, error)


UNAVAILABLE = {
    "57P03 starting up / shutting down": asyncpg.CannotConnectNowError("the database system is shutting down"),
    "57P01 admin shutdown": asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    "57P02 crash shutdown": asyncpg.exceptions.CrashShutdownError("terminating connection: crash of another"),
    "08006 connection failure": asyncpg.exceptions.ConnectionFailureError("connection failure"),
    "08003 connection lost": asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    "53300 too many connections": asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    "53200 out of memory": asyncpg.exceptions.OutOfMemoryError("out of memory"),
    "28P01 wrong password": asyncpg.InvalidPasswordError('password authentication failed for user "app"'),
    "28000 refused role": asyncpg.InvalidAuthorizationSpecificationError('role "app" does not exist'),
    "3D000 no database": asyncpg.exceptions.InvalidCatalogNameError('database "app" does not exist'),
    "connection is closed": asyncpg.InterfaceError("connection is closed"),
    "pool is closing": asyncpg.InterfaceError("pool is closing"),
    "after a FATAL": asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    ),
    "connection reset": ConnectionResetError(104, "Connection reset by peer"),
    "refused": ConnectionRefusedError(111, "Connect call failed"),
    "DNS": OSError(-2, "Name or service not known"),
    "acquire timeout": TimeoutError(),
    "pool timeout": sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"),
    "SQLite busy": sqlite_error(5, "database is locked"),
}
NOT_UNAVAILABLE = {
    "unique violation": asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    "syntax error": asyncpg.PostgresSyntaxError("syntax error at or near"),
    "undefined table": asyncpg.UndefinedTableError('relation "x" does not exist'),
    "statement misuse": asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    "bad argument": asyncpg.DataError("invalid input for query argument $1"),
    "SQLite no such table": sqlite_error(1, "no such table: x"),
    "a lazy load": sa_exc.InvalidRequestError("'Author.notes' is not available due to lazy='raise'"),
}


@pytest.mark.parametrize("error", list(UNAVAILABLE.values()), ids=list(UNAVAILABLE))
def test_unavailability_is_recognised_raw_and_through_sqlalchemy(error: Exception) -> None:
    assert isinstance(unavailable(error), DatabaseUnavailable)
    if type(error).__module__.startswith("asyncpg"):
        wrapped = through_sqlalchemy(error)
        assert type(wrapped) is sa_exc.DBAPIError  # not an OperationalError: the sqlstate decides
        down = unavailable(wrapped)
        assert down is not None and type(error).__name__ in down.reason


@pytest.mark.parametrize("error", list(NOT_UNAVAILABLE.values()), ids=list(NOT_UNAVAILABLE))
def test_other_database_errors_are_not_unavailability(error: Exception) -> None:
    assert unavailable(error) is None
    if type(error).__module__.startswith("asyncpg"):
        assert unavailable(through_sqlalchemy(error)) is None


# --- outages, on every path ---------------------------------------------------------------


@pytest.mark.slow
def test_every_path_answers_503_while_the_database_is_stopped(make: Make, private_pg: PrivatePostgres) -> None:
    with TestClient(make(private_pg.url)) as client:
        assert_all_answer(client)  # every pool holds connections now
        private_pg.stop("fast")
        assert_all_unavailable(client)
        assert client.get("/health/live").status_code == 200
        private_pg.start()
        wait_for(lambda: ask(client, "GET", "/probe/raw").status_code == 200, "the raw pool to reconnect")
        assert_all_answer(client)


@pytest.mark.slow
def test_every_path_answers_503_while_the_database_shuts_down(
    make: Make, private_pg: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(make(private_pg.url)):
        pass  # the schema, migrated
    holder = shutting_down(private_pg)
    try:
        with caplog.at_level(logging.WARNING), TestClient(make(private_pg.url, auto_migrate=False)) as client:
            assert_all_unavailable(client)  # every connection is a new one: 57P03
    finally:
        holder.close()
    assert "the database system is shutting down" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.slow
def test_every_path_answers_503_while_the_database_starts_up(make: Make, private_pg: PrivatePostgres) -> None:
    with TestClient(make(private_pg.url)) as client:
        assert_all_answer(client)
        private_pg.stop("fast")
        private_pg.recovering()
        assert _refused_with(private_pg.dsn) == "57P03"  # "not accepting connections": in recovery
        assert_all_unavailable(client)
        private_pg.promote()
        wait_for(lambda: ask(client, "GET", "/probe/raw").status_code == 200, "the raw pool to reconnect")
        assert_all_answer(client)


@pytest.mark.slow
def test_other_database_errors_are_a_json_500(make: Make, private_pg: PrivatePostgres) -> None:
    with TestClient(make(private_pg.url)) as client:  # an unhandled exception would raise here
        for method, path in [
            ("GET", "/probe/broken/session"),
            ("POST", "/probe/broken/duplicate"),
            ("GET", "/probe/broken/raw"),
            ("GET", "/probe/broken/read-query"),
        ]:
            response = client.request(method, path)
            assert response.status_code == 500, (path, response.text)
            assert response.json() == {"detail": "database error"}, path
        assert client.get("/probe/read-session").json() == 0  # the duplicate was rolled back


# --- commits -------------------------------------------------------------------------------


class CommitProxy:
    """A TCP proxy to PostgreSQL on its own thread; ``arm(mode)`` breaks the next COMMIT:
    ``"lose answer"`` forwards it, drops the server's answer and closes the client's
    connection (committed, the client cannot know); ``"lose commit"`` closes the connection
    instead of forwarding it (not committed)."""

    def __init__(self, port: int) -> None:
        self.target, self.port, self.mode = port, free_port(), ""
        self.fired = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", self.port), self.loop
        ).result(10)

    def arm(self, mode: str) -> None:
        self.fired.clear()
        self.mode = mode

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target)
        drop_next = asyncio.Event()

        def cut() -> None:
            writer.transport.abort()
            server_writer.transport.abort()
            self.fired.set()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if self.mode and b"COMMIT" in data:
                    mode, self.mode = self.mode, ""
                    if mode == "lose commit":
                        cut()
                        return
                    drop_next.set()
                server_writer.write(data)
                await server_writer.drain()
            server_writer.close()

        async def downstream() -> None:
            while data := await server_reader.read(65536):
                if drop_next.is_set():
                    cut()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)

    def close(self) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def proxy(private_pg: PrivatePostgres) -> Iterator[CommitProxy]:
    proxy = CommitProxy(private_pg.port)
    try:
        yield proxy
    finally:
        proxy.close()


def _names(pg: PrivatePostgres) -> set[str]:
    """The authors' names in the database (what was committed)."""
    holder = Holder(pg.dsn)
    try:
        return {row["name"] for row in holder.fetch("SELECT name FROM t_authors")}
    finally:
        holder.close()


@pytest.mark.slow
def test_a_commit_whose_answer_is_lost_is_looked_up(
    make: Make, private_pg: PrivatePostgres, proxy: CommitProxy
) -> None:
    url = private_pg.url.replace(str(private_pg.port), str(proxy.port))
    with TestClient(make(url, query_count_header=True)) as client:
        plain = client.post("/probe/session?name=plain")
        proxy.arm("lose answer")
        committed = client.post("/probe/session?name=committed")
        assert proxy.fired.is_set()
        proxy.arm("lose commit")
        lost = client.post("/probe/session?name=lost")
        assert proxy.fired.is_set()
        after = client.post("/probe/session?name=after")
        read = client.get("/probe/read-session")
    assert plain.status_code == 201 and plain.headers["x-db-queries"] == "2"  # the INSERT, the txid
    assert committed.status_code == 201 and committed.json()["id"] > plain.json()["id"]
    assert lost.status_code == 503 and lost.headers["retry-after"] == RETRY_AFTER
    assert after.status_code == 201 and read.headers["x-db-queries"] == "1"  # reads pay nothing
    assert _names(private_pg) == {"plain", "committed", "after"}


@pytest.mark.slow
def test_nothing_after_an_acknowledged_commit_turns_the_answer_into_an_error(
    make: Make, private_pg: PrivatePostgres, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing_close(self: AsyncSession) -> None:
        raise sa_exc.OperationalError("ROLLBACK", None, ConnectionResetError(104, "Connection reset by peer"))

    async def failing_release(self: asyncpg.Pool, connection: Any, **_: Any) -> None:
        connection.terminate()  # what asyncpg does when a reset fails, before it raises
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    with TestClient(make(private_pg.url)) as client:
        with caplog.at_level(logging.WARNING):
            monkeypatch.setattr(AsyncSession, "close", failing_close)
            created = client.post("/probe/session?name=kept")
            monkeypatch.undo()
            monkeypatch.setattr(asyncpg.Pool, "release", failing_release)
            raw = client.get("/probe/raw")
            monkeypatch.undo()
        again = client.get("/probe/raw")
    assert created.status_code == 201 and raw.status_code == 200 and again.status_code == 200
    assert "closing a" in caplog.text and "could not be reset" in caplog.text
    assert _names(private_pg) == {"kept"}


# --- shutdown -------------------------------------------------------------------------------


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors, and anything logged with a traceback."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def _relay_stopped() -> bool:
    return not [t for t in asyncio.all_tasks() if t.get_name() == "fastplug-tasks-relay"]


def _tasks_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fastplug.tasks" and r.levelno == logging.WARNING]


@pytest.mark.slow
def test_shutdown_while_the_database_is_down_logs_a_warning_not_an_error(
    fastplug_app_factory: Make, private_pg: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    def app(migrate: bool) -> FastAPI:
        db = {"url": private_pg.url, "auto_migrate": migrate, "pool_timeout": 2.0, "connect_timeout": 2.0}
        return fastplug_app_factory(plugins=["health", "db", "tasks"], db=db)

    with TestClient(app(migrate=True)):
        pass  # the outbox table, migrated
    holder = shutting_down(private_pg)  # the relay's first pass (memory:// broker) finds no database
    try:
        with caplog.at_level(logging.WARNING), TestClient(app(migrate=False)) as client:
            met = lambda: _tasks_warnings(caplog) or client.portal.call(_relay_stopped)  # noqa: E731
            wait_for(met, "the relay to meet the database shutting down")
    finally:
        holder.close()
    assert not _errors(caplog), _errors(caplog)
    warnings = _tasks_warnings(caplog)
    assert warnings and all("the database system is shutting down" in line for line in warnings), warnings


@pytest.mark.slow
def test_shutdown_with_a_broker_while_the_database_is_stopped_logs_a_warning(
    fastplug_app_factory: Make, private_pg: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    db = {"url": private_pg.url, "auto_migrate": True, "pool_timeout": 2.0, "connect_timeout": 2.0}
    tasks = {"broker_url": "redis://127.0.0.1:6379/15", "embedded_worker": False}
    app = fastplug_app_factory(plugins=["health", "db", "tasks"], db=db, tasks=tasks)
    with caplog.at_level(logging.WARNING), TestClient(app):
        private_pg.stop("fast")  # the last relay pass, at shutdown, finds no database
    assert "plugin 'tasks' could not publish the outbox at shutdown: database unavailable (" in caplog.text
    assert not _errors(caplog), _errors(caplog)
