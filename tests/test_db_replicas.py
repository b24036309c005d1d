"""``[db] read_urls``: the read paths on a streaming replica, writes and writing requests on
the primary, and the replica left out while it is stopped or lags, with no failed request.

A private primary and its standby (``pg_basebackup -R``), never the shared PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from fastplug.config.errors import FastplugError
from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.cache.api import cached
from fastplug.plugins.db.api import REPLICAS, DbReadConnection, DbReader, DbReadSession, DbSession, ReadQuery
from tests.chaos.instances import PrivatePostgres, PrivateReplica

pytestmark = pytest.mark.slow

WHERE = "SELECT CASE WHEN pg_is_in_recovery() THEN 'replica' ELSE 'primary' END"
WHERE_QUERY = ReadQuery(select(func.pg_is_in_recovery().label("standby")))


def _where(standby: bool) -> str:
    return "replica" if standby else "primary"


router = APIRouter()


@router.get("/where/session")
async def where_session(session: DbReadSession) -> str:
    return str((await session.execute(text(WHERE))).scalar())


@router.get("/where/connection")
async def where_connection(connection: DbReadConnection) -> str:
    return str((await connection.execute(text(WHERE))).scalar())


@router.get("/where/reader")
async def where_reader(db: DbReader) -> str:
    row = await WHERE_QUERY.first(db)
    return _where(bool(row and row["standby"]))


@router.get("/cached/where")
@cached(ttl=60)
async def cached_where(session: DbReadSession, n: int = 0) -> str:
    """An answer the cache keeps and serves to others: read on the primary."""
    return str((await session.execute(text(WHERE))).scalar())


@router.post("/notes/{text_}")
async def write_then_read(text_: str, read: DbReadSession, session: DbSession, db: DbReader) -> dict[str, Any]:
    """Writes, commits, then reads it back on both read paths (the read session is declared
    first: it was opened before the write session)."""
    await session.execute(text("INSERT INTO replica_notes (body) VALUES (:b)"), {"b": text_})
    await session.commit()
    seen = (await read.execute(text("SELECT count(*) FROM replica_notes WHERE body = :b"), {"b": text_})).scalar()
    row = await WHERE_QUERY.first(db)
    return {
        "session": str((await read.execute(text(WHERE))).scalar()),
        "reader": _where(bool(row and row["standby"])),
        "seen": seen,
    }


class Readers:
    """The test's plugin: the routes above."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="readers", requires=("db",))

    @hookimpl
    def register_routers(self) -> Sequence[APIRouter]:
        return [router]


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[PrivatePostgres, PrivateReplica]]:
    primary = PrivatePostgres()
    replica = None
    try:
        primary.sql("CREATE TABLE replica_notes (id serial PRIMARY KEY, body text NOT NULL)")
        replica = PrivateReplica(primary)
        yield primary, replica
    finally:
        if replica is not None:
            replica.kill()
        primary.kill()


Make = Callable[..., FastAPI]


@pytest.fixture
def make(fastplug_app_factory: Make, cluster: tuple[PrivatePostgres, PrivateReplica]) -> Make:
    primary, replica = cluster

    def build(**db: Any) -> FastAPI:
        conf = {
            "url": primary.url,
            "read_urls": [replica.url],
            "replica_check_interval": 0.2,
            "replica_retry": 1.0,
            "pool_timeout": 2.0,
            "connect_timeout": 2.0,
            **db,
        }
        return fastplug_app_factory(
            plugins=["health", "db", "cache", "readers"], extra_plugins={"readers": Readers()}, db=conf
        )

    return build


PATHS = ("/where/session", "/where/connection", "/where/reader")


def _answers(client: TestClient) -> list[str]:
    out = []
    for path in PATHS:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        out.append(response.json())
    return out


def _until(client: TestClient, wanted: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if _answers(client) == [wanted] * 3:
            return
        time.sleep(0.1)
    raise AssertionError(f"reads did not all move to the {wanted} within {limit}s: {_answers(client)}")


def test_reads_run_on_the_replica_and_a_writing_request_on_the_primary(make: Make) -> None:
    with TestClient(make()) as client:
        _until(client, "replica", 10)
        answer = client.post("/notes/mine")
        assert answer.status_code == 200, answer.text
        # its own write, seen at once by both read paths: they ran on the primary
        assert answer.json() == {"session": "primary", "reader": "primary", "seen": 1}
        assert _answers(client) == ["replica"] * 3  # the next request reads on the replica again
        replicas = client.app.state.fastplug.services[REPLICAS]  # type: ignore[attr-defined]
        assert [f["usable"] for f in replicas.figures().values()] == [True]


def test_a_cache_fill_reads_on_the_primary(make: Make) -> None:
    """A miss that fills an entry reads on the primary: an entry read on a lagging replica
    after a write would be served, stale, to everyone until it expires."""
    with TestClient(make()) as client:
        _until(client, "replica", 10)
        for n in range(3):
            miss = client.get(f"/cached/where?n={n}")
            hit = client.get(f"/cached/where?n={n}")
            assert miss.json() == hit.json() == "primary", (miss.headers, hit.headers)
            assert hit.headers["x-cache"] == "HIT"
        assert _answers(client) == ["replica"] * 3


def test_a_stopped_replica_costs_no_failed_request(make: Make, cluster: tuple[PrivatePostgres, PrivateReplica]) -> None:
    _, replica = cluster
    with TestClient(make()) as client:
        _until(client, "replica", 10)
        seen: list[str] = []
        try:
            for n in range(300):  # bounded: 900 reads
                if n == 100:
                    replica.stop("fast")
                seen.extend(_answers(client))  # each asserts a 200
            assert seen[-3:] == ["primary"] * 3
            assert client.get("/health/ready").status_code == 200  # reads have the primary
        finally:
            replica.start()
        _until(client, "replica", 20)  # taken back once it answers again
    assert "replica" in seen[:300] and "primary" in seen[300:]


def test_a_lagging_replica_is_left_out_until_it_catches_up(
    make: Make, cluster: tuple[PrivatePostgres, PrivateReplica]
) -> None:
    _, replica = cluster
    with TestClient(make(replica_max_lag=1.0)) as client:
        _until(client, "replica", 10)
        replica.sql("SELECT pg_wal_replay_pause()")
        try:
            for n in range(40):  # bounded: a write every 0.1 s keeps WAL coming
                assert client.post(f"/notes/lag-{n}").status_code == 200
                time.sleep(0.1)
                if _answers(client) == ["primary"] * 3:
                    break
            else:
                raise AssertionError("a replica 4 s behind was still used")
            replicas = client.app.state.fastplug.services[REPLICAS]  # type: ignore[attr-defined]
            (figures,) = replicas.figures().values()
            assert not figures["usable"] and figures["lag"] > 1.0 and figures["reason"].startswith("lag")
        finally:
            replica.sql("SELECT pg_wal_replay_resume()")
        _until(client, "replica", 20)


def test_read_urls_are_checked(fastplug_app_factory: Make) -> None:
    with pytest.raises(FastplugError, match="read_urls"):
        fastplug_app_factory(plugins=["db"], db={"read_urls": ["postgresql+asyncpg://u@replica/app"]})
    with pytest.raises(FastplugError, match="read_urls"):
        fastplug_app_factory(
            plugins=["db"],
            db={"url": "postgresql+asyncpg://u@primary/app", "read_urls": ["sqlite+aiosqlite:///x.db"]},
        )
