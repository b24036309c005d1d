"""PostgreSQL sessions that never answer an error for a transaction that committed.

When the connection is lost while COMMIT is in flight (the server crashed, or stopped just
after committing), the client cannot tell whether the transaction committed: an error answer
may then be wrong, and a client retrying the request does it twice. So a session whose
transaction wrote (an ORM flush, or any statement but a compiled SELECT, on the session's
connection) reads ``txid_current_if_assigned()`` before COMMIT: one round trip, on write
transactions only. When COMMIT then fails for want of a database, ``txid_status()`` on a
new connection (retried while the server comes back, up to ``[db] pool_timeout``) decides:
committed, and ``commit()`` returns as if it had been acknowledged; aborted, and its error
stands (503 + Retry-After: safe to retry); still unknown (the server did not come back in
time), and the 503's detail says ``the outcome of this write is unknown`` (check before
retrying).

A crash can hand the same transaction id out again: the id of a transaction whose WAL was
not yet flushed is not in the recovered WAL, so the server gives it to a new transaction, and
``txid_status()`` then tells that one's fate. So each connection also notes the server's
*incarnation* (``pg_postmaster_start_time()`` and the statistics reset time, which a crash
recovery resets even when the postmaster survives), read with its first write probe. When
the server has a new incarnation, the checkpoint it took on the way up (shutdown or end of
recovery) holds the first id it handed out again: an id at or above it was lost with the
crash (aborted), one below it was recovered and its status stands. If a later checkpoint has
already replaced that one, a "committed" cannot be told from a reused id, and is in doubt.

Not covered: commits of ``async with session.begin():`` blocks (they do not go through
``AsyncSession.commit``), writes hidden in a ``SELECT`` (``SELECT nextval(...)``, a function
that writes), and a failover to a standby that had not received the transaction.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, bindparam, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from fastplug.core import one_line
from fastplug.plugins.db.errors import DatabaseUnavailable, unavailable

IN_DOUBT = "database unavailable: the outcome of this write is unknown"
log = logging.getLogger("fastplug.db")

WROTE: weakref.WeakSet[Connection] = weakref.WeakSet()
"""Connections that ran a statement that may have written (since they were checked out)."""
XID = "SELECT txid_current_if_assigned()"
INCARNATION_SQL = "pg_postmaster_start_time(), (SELECT stats_reset FROM pg_stat_bgwriter)"
XID_AND_INCARNATION = f"SELECT txid_current_if_assigned(), {INCARNATION_SQL}"
INCARNATION = "fastplug_incarnation"
"""Key of a connection's ``info``: the server incarnation it was opened in."""
STATUS = text(
    f"SELECT {INCARNATION_SQL}, c.next_xid, c.redo_lsn = c.checkpoint_lsn,"
    " CASE WHEN :xid < txid_snapshot_xmax(txid_current_snapshot()) THEN txid_status(:xid)"
    " ELSE 'lost' END"
    " FROM pg_control_checkpoint() AS c"
).bindparams(bindparam("xid", type_=BigInteger))
RETRY = 0.1  # seconds between attempts to ask a transaction's status


def note_write(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    """``before_cursor_execute`` (PostgreSQL engines): remember a connection that may write."""
    if context.isinsert or context.isupdate or context.isdelete or context.is_text:
        WROTE.add(conn)


class _Session(Session):
    """Remembers the connection its current transaction runs on."""

    fastplug_connection: Connection | None = None


@event.listens_for(_Session, "after_begin")
def _began(session: _Session, transaction: Any, connection: Connection) -> None:
    session.fastplug_connection = connection


def full_xid(text_xid: str) -> int:
    """A checkpoint's ``epoch:xid`` as the 64-bit id ``txid_current()`` gives."""
    epoch, _, xid = text_xid.partition(":")
    return (int(epoch) << 32) | int(xid)


def decide(xid: int, incarnation: tuple[Any, ...], row: tuple[Any, ...]) -> str | None:
    """``committed``, ``aborted``, ``in progress`` or ``None`` (unknown) for transaction ``xid``
    of server ``incarnation``, from a :data:`STATUS` row read after the connection was lost."""
    *now, checkpoint_next, at_restart, status = row
    if status == "lost":  # not handed out since the server came back: it died with the crash
        return "aborted"
    if tuple(now) == incarnation or status != "committed":  # an abort is an abort either way
        return status  # type: ignore[no-any-return]
    if not at_restart:  # a later checkpoint hides where the reused ids begin
        return None
    return "committed" if xid < full_xid(checkpoint_next) else "aborted"


async def transaction_status(engine: AsyncEngine, xid: int, incarnation: tuple[Any, ...], within: float) -> str | None:
    """``committed`` or ``aborted`` for transaction ``xid`` (begun in server ``incarnation``),
    asked on a new connection and again while the database is unavailable, for up to
    ``within`` seconds; else ``None``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            async with asyncio.timeout_at(deadline), engine.connect() as connection:
                row = (await connection.execute(STATUS, {"xid": xid})).one()
        except Exception as exc:
            if loop.time() >= deadline:
                return None
            if unavailable(exc) is None:
                log.warning("db: cannot ask the status of transaction %s (%s)", xid, one_line(exc))
                return None
        else:
            status = decide(xid, incarnation, tuple(row))
            if status != "in progress":  # committed, aborted; None: too old or hidden to tell
                return status
        if loop.time() + RETRY >= deadline:
            return None
        await asyncio.sleep(RETRY)


class CheckedCommitSession(AsyncSession):
    """An ``AsyncSession`` whose ``commit()`` resolves a lost answer to COMMIT (see the module)."""

    sync_session_class = _Session
    resolve_within: float = 5.0
    count: Callable[[], None] | None = None

    async def commit(self) -> None:
        sync: _Session = self.sync_session  # type: ignore[assignment]
        if sync.new or sync.deleted or sync.dirty:
            await self.flush()  # what commit does first; then whether it wrote is known
        conn = sync.fastplug_connection
        if conn is None or conn.closed or conn.invalidated or conn not in WROTE:
            await super().commit()
            return
        if self.count is not None:
            self.count()
        xid, incarnation = await self._probe(conn)
        if xid is None:  # nothing written after all (text that only read)
            await super().commit()
            return
        try:
            await super().commit()
        except Exception as exc:
            down = unavailable(exc)
            if down is None:
                raise
            await self._discard()
            status = await transaction_status(self.bind, xid, incarnation, self.resolve_within)
            if status == "aborted":  # not written: the 503 says "try again", truly
                log.warning("db: no answer to COMMIT (%s); transaction %s aborted", down.reason, xid)
                raise
            if status != "committed":  # still unknown after ``resolve_within``: say so
                log.warning("db: no answer to COMMIT (%s); transaction %s in doubt", down.reason, xid)
                raise DatabaseUnavailable(f"transaction {xid} in doubt: {down.reason}", IN_DOUBT) from exc
            log.warning("db: no answer to COMMIT (%s), but transaction %s committed: it stands", down.reason, xid)
            sync.dispatch.after_commit(sync)  # what a commit does (the outbox wakes its relay)

    @staticmethod
    async def _probe(conn: Connection) -> tuple[int | None, tuple[Any, ...]]:
        """The transaction's id, and the server incarnation (read once per connection)."""
        info, driver = conn.connection.info, conn.connection.driver_connection
        incarnation = info.get(INCARNATION)
        if incarnation is not None:
            return await driver.fetchval(XID), incarnation
        xid, *now = await driver.fetchrow(XID_AND_INCARNATION)
        info[INCARNATION] = incarnation = tuple(now)
        return xid, incarnation

    async def _discard(self) -> None:
        """Drop the transaction and its lost connection (never back to the pool)."""
        try:
            await self.invalidate()
        except Exception as exc:
            log.debug("db: invalidating the session failed (%s)", one_line(exc))


def checked_session_class(count: Callable[[], None] | None, within: float) -> type[CheckedCommitSession]:
    """A :class:`CheckedCommitSession` for one app: its query counter, ``pool_timeout``."""
    attributes = {"count": staticmethod(count) if count is not None else None, "resolve_within": within}
    return type("CheckedCommitSession", (CheckedCommitSession,), attributes)
