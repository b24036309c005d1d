"""The db plugin against SQLite and the real PostgreSQL of this machine."""

from __future__ import annotations

import asyncio
import gc
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import db_notes
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from fastplug.core.runtime import Runtime
from fastplug.core.testing import LiveServer
from tests.conftest import PG_ADMIN_DSN, free_port

Make = Callable[..., FastAPI]
NOTE = {"author": "ada", "text": "hello"}


@pytest.fixture
def make(fastplug_app_factory: Make) -> Make:
    """An app with health, db and the notes plugin, its tables migrated at startup."""

    def build(url: str, **db: Any) -> FastAPI:
        conf = {"url": url, "auto_migrate": True, **db}
        return fastplug_app_factory(plugins=["health", "db", "notes"], extra_plugins={"notes": db_notes}, db=conf)

    return build


def in_app(client: TestClient, coro: Callable[[], Any]) -> Any:
    """Run ``coro()`` on the app's event loop (its pools belong to that loop)."""
    return client.portal.call(coro)  # type: ignore[union-attr]


def test_session_commits_on_success_and_rolls_back_on_error(make: Make, db_url: str) -> None:
    with TestClient(make(db_url)) as client:
        created = client.post("/notes", json=NOTE)
        failed = client.post("/notes/then-fail", json={"author": "bob", "text": "x"})
        count = client.get("/notes/count").json()
    assert created.status_code == 201 and created.json()["id"] >= 1
    assert failed.status_code == 409
    assert count == 1


def test_read_only_session_reads_without_a_transaction(make: Make, db_url: str) -> None:
    with TestClient(make(db_url, query_count_header=True)) as client:
        client.post("/notes", json=NOTE)
        read = client.get("/notes/count-read")
    assert read.json() == 1
    assert read.headers["x-db-queries"] == "1"


def test_read_connection_is_autocommit_and_returns_to_the_pool_clean(make: Make, db_url: str) -> None:
    with TestClient(make(db_url, query_count_header=True)) as client:
        client.post("/notes", json=NOTE)
        read = client.get("/notes/count-connection")
        autocommitted = client.post("/notes/autocommitted")
        failed = client.post("/notes/then-fail", json={"author": "bob", "text": "x"})  # rolled back:
        count = client.get("/notes/count").json()  # the pooled connections are transactional again
        authors = client.get("/authors/count").json()
    assert read.json() == {"count": 1, "isolation": "AUTOCOMMIT"}
    assert read.headers["x-db-queries"] == "1"
    assert autocommitted.status_code == 200 and failed.status_code == 409
    assert count == 1
    assert authors == 2  # NOTE's author and "auto"; bob's was rolled back


def test_sessions_do_not_expire_on_commit(make: Make, db_url: str) -> None:
    app = make(db_url)
    with TestClient(app) as client:
        client.post("/notes", json=NOTE)
        maker = Runtime.of(app).services.require("db.sessionmaker", async_sessionmaker)

        async def read_after_commit() -> str:
            async with maker() as session:
                note = await session.scalar(select(db_notes.Note))
                await session.commit()
                return note.text  # no refresh query after commit: expire_on_commit=False

        assert in_app(client, read_after_commit) == "hello"
        assert isinstance(maker(), AsyncSession)


def test_relationships_raise_instead_of_lazy_loading(make: Make, sqlite_url: str) -> None:
    app = make(sqlite_url)
    with TestClient(app) as client:
        client.post("/notes", json=NOTE)
        maker = Runtime.of(app).services.require("db.sessionmaker", async_sessionmaker)

        async def touch(eager: bool) -> int:
            async with maker() as session:
                query = select(db_notes.Author)
                if eager:
                    query = query.options(selectinload(db_notes.Author.notes))
                author = await session.scalar(query)
                return len(author.notes)

        assert in_app(client, lambda: touch(eager=True)) == 1
        with pytest.raises(sa_exc.InvalidRequestError, match="lazy='raise'"):
            in_app(client, lambda: touch(eager=False))


def test_query_count_header(make: Make, db_url: str) -> None:
    with TestClient(make(db_url, query_count_header=True)) as client:
        client.post("/notes", json=NOTE)
        response = client.get("/notes/count")
        live = client.get("/health/live")
    assert response.headers["x-db-queries"] == "1"
    assert "x-db-queries" in live.headers and live.headers["x-db-queries"] == "0"


def test_pool_exhaustion_answers_503_not_a_hang(make: Make, db_url: str) -> None:
    app = make(db_url, pool_size=1, max_overflow=0, pool_timeout=0.5, retry_after=2)
    with LiveServer(app) as server, ThreadPoolExecutor(2) as pool:
        holder = pool.submit(httpx.get, f"{server.url}/hold?seconds=3", timeout=20)
        deadline_client = httpx.Client(timeout=2.5)  # under the 3 s hold: waiting for it would fail
        for _ in range(200):  # wait until /hold has the only connection
            stats = deadline_client.get(f"{server.url}/health/ready").json()
            if stats["checks"]["db"].get("detail", {}).get("checked_out") == 1 or stats["status"] == "fail":
                break
        response = deadline_client.get(f"{server.url}/notes/count")
        assert holder.result().status_code == 200
        after = deadline_client.get(f"{server.url}/notes/count")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {"detail": "database busy: no connection available"}
    assert after.status_code == 200


def test_raw_pool_exhaustion_answers_503_not_a_hang(make: Make, pg_url: str) -> None:
    app = make(pg_url, pool_timeout=0.5, raw_pool={"min_size": 0, "max_size": 1})
    with LiveServer(app) as server, ThreadPoolExecutor(1) as pool:
        holder = pool.submit(httpx.get, f"{server.url}/raw/hold?seconds=3", timeout=20)
        client = httpx.Client(timeout=2.5)  # well under the 3 s hold: a wait for it would fail here
        for _ in range(200):  # until /raw/hold has the pool's only connection
            if client.get(f"{server.url}/raw").status_code == 503:
                break
        response = client.get(f"{server.url}/raw")
        assert holder.result().status_code == 200
        after = client.get(f"{server.url}/raw")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert after.json() == 42


def test_database_down_gives_503_while_live_stays_200(fastplug_app_factory: Make) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    app = fastplug_app_factory(
        plugins=["health", "db", "notes"], extra_plugins={"notes": db_notes}, db={"url": url, "connect_timeout": 2}
    )
    with TestClient(app, client=("127.0.0.1", 50000)) as client:  # loopback: shown the health details
        route = client.get("/notes/count")
        raw = client.get("/raw")
        live = client.get("/health/live")
        ready = client.get("/health/ready")
    assert route.status_code == 503 and route.headers["retry-after"] == "1"
    assert raw.status_code == 503
    assert live.status_code == 200
    assert ready.status_code == 503 and ready.json()["failed"] == ["db"]
    assert ready.json()["checks"]["db"]["error"].startswith("ConnectionRefusedError")


async def _terminate_backends(database: str) -> int:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return len(rows)
    finally:
        await connection.close()


async def _connections_to(database: str) -> int:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
        )
    finally:
        await connection.close()


def test_recovers_from_killed_connections_without_an_error(make: Make, pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    with TestClient(make(pg_url)) as client:
        assert client.get("/notes/count").status_code == 200
        assert client.get("/raw").json() == 42
        assert client.get("/raw/pooled").json() == 42
        assert asyncio.run(_terminate_backends(database)) >= 2  # the engine's and the raw pool's
        for _ in range(500):  # pg_terminate_backend only signals: wait until the backends are gone
            if asyncio.run(_connections_to(database)) == 0:
                break
        # the very next requests succeed: the engine replaces its closed connections at checkout,
        # asyncpg's pool notices its closed ones
        assert client.get("/notes/count").status_code == 200
        assert client.get("/raw").json() == 42


def test_everything_is_closed_at_shutdown(make: Make, pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with TestClient(make(pg_url)) as client:
            for _ in range(5):
                client.post("/notes", json=NOTE | {"author": os.urandom(4).hex()})
            assert client.get("/raw").json() == 42
            assert asyncio.run(_connections_to(database)) >= 2
        gc.collect()
    assert asyncio.run(_connections_to(database)) == 0
    assert [str(w.message) for w in caught if "nclosed" in str(w.message)] == []


def test_raw_pool_is_postgres_only(make: Make, sqlite_url: str) -> None:
    with TestClient(make(sqlite_url)) as client:
        response = client.get("/raw")
    assert response.status_code == 503


def test_health_reports_pool_figures(make: Make, db_url: str) -> None:
    with TestClient(make(db_url, pool_size=3), client=("127.0.0.1", 50000)) as client:  # loopback: shown the details
        body = client.get("/health/ready").json()
    assert body["checks"]["db"]["status"] == "ok"
    assert body["checks"]["db"]["detail"] == {"size": 3, "checked_out": 0, "overflow": 0, "waiters": 0}


def test_forked_child_does_not_reuse_the_parents_connections(make: Make, sqlite_url: str) -> None:
    app = make(sqlite_url)
    with TestClient(app) as client:
        assert client.get("/notes/count").status_code == 200
        engine = Runtime.of(app).services.require("db.engine", AsyncEngine)
        assert engine.sync_engine.pool.checkedin() >= 1
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: what does it see in the pool?
            os.write(write, str(engine.sync_engine.pool.checkedin()).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        in_child = int(os.read(read, 16))
        os.close(read), os.close(write)
        assert engine.sync_engine.pool.checkedin() >= 1  # the parent keeps its own
    assert in_child == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://u@h/db", "unknown database 'postgres'"),
        ("postgresql://u@h/db", "'postgresql' is not an async driver"),
        ("not a url", "not a database URL"),
    ],
)
def test_bad_url_is_a_settings_error(fastplug_app_factory: Make, url: str, message: str) -> None:
    from fastplug.config.errors import FastplugError

    with pytest.raises(FastplugError) as caught:
        fastplug_app_factory(plugins=["db"], db={"url": url, "pool_size": -3})
    text = str(caught.value)
    assert message in text
    assert "(db.pool_size): expected an integer >= 1, got -3" in text  # reported together


def test_relative_sqlite_path_is_beside_settings_toml(
    fastplug_settings_file: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastplug.core.bootstrap import load
    from fastplug.plugins.db.engine import db_settings

    monkeypatch.chdir(tmp_path.parent)
    settings, _ = load(
        fastplug_settings_file, overrides={"plugins": ["db"], "db": {"url": "sqlite+aiosqlite:///./var/x.db"}}
    )
    assert db_settings(settings).url == f"sqlite+aiosqlite:///{fastplug_settings_file.parent / 'var' / 'x.db'}"


def test_backref_side_raises_too() -> None:
    from db_backref import Book, Shelf
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    assert Shelf.books.property.lazy == "raise"
    assert Book.shelf.property.lazy == "raise"  # type: ignore[attr-defined]


@pytest.mark.parametrize("dependency", ["session", "read_session", "read_connection"])
def test_connections_are_shared_fairly_under_load(make: Make, db_url: str, dependency: str) -> None:
    """Twenty busy clients on a pool of two each get their turn: a request that arrives as a
    connection comes back queues behind those already waiting (SQLAlchemy's pool queue alone
    lets it take the connection first, and some requests then wait for seconds)."""
    from starlette.requests import HTTPConnection

    from fastplug.plugins.db import deps as db

    open_one = {"session": db._session, "read_session": db._read_session, "read_connection": db._read_connection}[
        dependency
    ]
    app = make(db_url, pool_size=2, max_overflow=0, pool_timeout=30)
    with TestClient(app) as client:
        conn = HTTPConnection({"type": "http", "state": Runtime.of(app).services})
        turns = dict.fromkeys(range(20), 0)
        total = 400

        async def client_loop(me: int) -> None:
            while sum(turns.values()) < total:
                held = open_one(conn)
                await held.__anext__()
                turns[me] += 1
                await asyncio.sleep(0)
                await held.aclose()

        async def scenario() -> None:
            await asyncio.gather(*(client_loop(me) for me in turns))

        in_app(client, scenario)
    # in arrival order every client gets about total/20 = 20 turns
    assert min(turns.values()) >= 10, turns
