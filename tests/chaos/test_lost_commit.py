"""The status of a transaction whose COMMIT answer was lost, across restarts and crashes.

A crash hands out again the ids of transactions whose WAL was not flushed, so after a crash
``txid_status()`` of a lost transaction can report a new transaction's commit. These tests
make that happen and check that the db plugin's resolver is not fooled by it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from chaos.instances import PrivatePostgres
from fastplug.plugins.db.sessions import XID_AND_INCARNATION, transaction_status


async def _begin_write(dsn: str) -> tuple[asyncpg.Connection, int, tuple[object, ...]]:
    """A connection inside a transaction that inserted a row: (connection, xid, incarnation)."""
    connection = await asyncpg.connect(dsn)
    await connection.execute("CREATE TABLE IF NOT EXISTS marks (n int)")
    await connection.execute("BEGIN")
    await connection.execute("INSERT INTO marks VALUES (1)")
    xid, *incarnation = await connection.fetchrow(XID_AND_INCARNATION)
    return connection, xid, tuple(incarnation)


async def _autocommit(dsn: str, sql: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def _status(pg: PrivatePostgres, xid: int, incarnation: tuple[object, ...]) -> str | None:
    engine = create_async_engine(pg.url)
    try:
        return await transaction_status(engine, xid, incarnation, within=10.0)
    finally:
        await engine.dispose()


def test_an_id_reused_after_a_crash_is_not_taken_for_the_lost_transaction(chaos_pg) -> None:
    async def scenario() -> tuple[object, str | None]:
        _lost, xid, incarnation = await _begin_write(chaos_pg.dsn)
        chaos_pg.restart("immediate")  # the transaction's WAL was never flushed: gone
        await _autocommit(chaos_pg.dsn, "INSERT INTO marks VALUES (2)")  # takes the same id
        naive = await _autocommit(chaos_pg.dsn, f"SELECT txid_status({xid})")
        return naive, await _status(chaos_pg, xid, incarnation)

    naive, status = asyncio.run(scenario())
    assert naive == "committed", "the crash did not reuse the id: the test shows nothing"
    assert status == "aborted"
    assert asyncio.run(_autocommit(chaos_pg.dsn, "SELECT count(*) FROM marks WHERE n = 1")) == 0


def test_an_id_lost_in_a_crash_and_not_yet_reused_is_aborted(chaos_pg) -> None:
    async def scenario() -> str | None:
        _lost, xid, incarnation = await _begin_write(chaos_pg.dsn)
        chaos_pg.restart("immediate")
        return await _status(chaos_pg, xid, incarnation)  # the id is "in the future" now

    assert asyncio.run(scenario()) == "aborted"


def test_a_commit_that_reached_the_wal_before_a_crash_is_committed(chaos_pg) -> None:
    async def scenario() -> str | None:
        connection, xid, incarnation = await _begin_write(chaos_pg.dsn)
        await connection.execute("COMMIT")  # flushed; its answer is what a crash would lose
        chaos_pg.restart("immediate")
        await _autocommit(chaos_pg.dsn, "INSERT INTO marks VALUES (2)")
        return await _status(chaos_pg, xid, incarnation)

    assert asyncio.run(scenario()) == "committed"


def test_a_backend_crash_without_a_restart_is_seen_too(chaos_pg) -> None:
    """A killed backend makes the postmaster recover from a crash, keeping its start time."""

    async def scenario() -> tuple[object, str | None]:
        _lost, xid, incarnation = await _begin_write(chaos_pg.dsn)
        victim = await asyncpg.connect(chaos_pg.dsn)
        pid = await victim.fetchval("SELECT pg_backend_pid()")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        # Until the postmaster has reaped the killed backend it still serves: an INSERT then
        # takes the next id, not the lost one, in the old incarnation. It ends every other
        # backend (``_lost``'s too) before it recovers, so wait for that first.
        while True:
            try:
                await _lost.execute("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                break
            assert time.monotonic() < deadline, "the server did not notice the crash"
            await asyncio.sleep(0.05)
        while True:  # the server refuses connections while it recovers
            try:
                await _autocommit(chaos_pg.dsn, "INSERT INTO marks VALUES (2)")
                break
            except (OSError, asyncpg.PostgresError):
                assert time.monotonic() < deadline, "the server did not recover"
                await asyncio.sleep(0.2)
        naive = await _autocommit(chaos_pg.dsn, f"SELECT txid_status({xid})")
        return naive, await _status(chaos_pg, xid, incarnation)

    naive, status = asyncio.run(scenario())
    assert naive == "committed", "the crash did not reuse the id: the test shows nothing"
    assert status == "aborted"


def test_without_a_crash_the_status_stands(chaos_pg) -> None:
    async def scenario() -> tuple[str | None, str | None]:
        committed, xid_c, incarnation = await _begin_write(chaos_pg.dsn)
        await committed.execute("COMMIT")
        aborted, xid_a, _ = await _begin_write(chaos_pg.dsn)
        await _autocommit(chaos_pg.dsn, f"SELECT pg_terminate_backend({aborted.get_server_pid()})")
        return await _status(chaos_pg, xid_c, incarnation), await _status(chaos_pg, xid_a, incarnation)

    assert asyncio.run(scenario()) == ("committed", "aborted")
