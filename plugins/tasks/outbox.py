"""The transactional outbox: rows written in the request's transaction, published by a relay.

The relay runs in every server process and in ``manage.py worker``. Each pass takes pending
rows with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so two relays never publish the same row
at once; the periodic poll additionally runs in one process at a time (the holder of a
transaction-level advisory lock: the leader). A commit that wrote rows wakes its own
process's relay, which publishes them at once. A row is marked ``sent`` only after the
broker took it; a crash in between publishes it again, and the worker's idempotency guard
(:mod:`fastplug.plugins.tasks.runtime`) runs its side effect once.

``sent`` means in flight, not delivered: the worker marks the row ``done`` (or ``failed``)
when the task ran. The leader's poll publishes again (same id) a row still ``sent``
``outbox_redelivery_timeout`` after its publish (the broker lost it: restarted empty, say),
and publishes ``deferred`` rows (an eta further ahead than the relay's lead) shortly before
they are due, so no broker holds a task for long before it runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, event, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from fastplug.core import one_line
from fastplug.plugins.tasks.errors import BrokerUnavailable
from fastplug.plugins.tasks.models import DEFERRED, DONE, FAILED, PENDING, RUNNING, SENT
from fastplug.plugins.tasks.publisher import Publisher
from fastplug.plugins.tasks.runtime import OUTBOX, utcnow
from fastplug.plugins.tasks.settings import TasksSettings

log = logging.getLogger("fastplug.tasks")
WAKE = "fastplug.tasks.wake"  # session.info key: relays to wake when the session commits
LEADER_LOCK = 0x66_70_74_61_73_6B  # pg advisory lock id of the polling relay ("fptask")
PURGE_EVERY = 60.0  # seconds between purges of old rows
INSERT = insert(OUTBOX)
LEAD = text(f"SELECT pg_try_advisory_xact_lock({LEADER_LOCK})")
MAX_BACKOFF_POLLS = 10  # after failures, wait at most this many relay intervals
COALESCE = 0.005  # seconds a commit's wake-up waits for more commits
MIN_LEAD = 1.0  # seconds before its eta a deferred row is published, at least


def _after_commit(session: Session) -> None:
    for relay in session.info.pop(WAKE, ()):
        relay.wake()


def _after_rollback(session: Session) -> None:
    session.info.pop(WAKE, None)


_listening = False


def _listen() -> None:
    """Hook commits once per process: a session that wrote outbox rows wakes its relay."""
    global _listening
    if not _listening:
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
        _listening = True


def outbox_row(
    name: str, args: Sequence[Any], kwargs: dict[str, Any], options: dict[str, Any], defer_until: Any = None
) -> dict[str, Any]:
    """A new row's values (pending, or deferred until ``defer_until``, its eta); raises
    ``TypeError`` now if the arguments are not JSON."""
    payload = json.dumps({"args": list(args), "kwargs": kwargs, "options": options}, separators=(",", ":"))
    return {
        "id": str(uuid.uuid4()),
        "task": name,
        "payload": payload,
        "state": PENDING if defer_until is None else DEFERRED,
        "attempts": 0,
        "created_at": utcnow(),
        "due_at": defer_until,
    }


class Relay:
    """Publishes pending outbox rows: on a local commit, and every ``outbox_relay_interval``."""

    def __init__(self, engine: AsyncEngine, publisher: Publisher, conf: TasksSettings) -> None:
        self.engine, self.publisher, self.conf = engine, publisher, conf
        self.metrics = publisher.app.fastplug.metrics
        self.locking = engine.dialect.name == "postgresql"
        self.lease = timedelta(seconds=conf.visibility_timeout)
        self.redelivery = timedelta(seconds=conf.outbox_redelivery_timeout)
        self.lead = max(MIN_LEAD, 2 * conf.outbox_relay_interval)  # deferred rows: published this early
        self.failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_purge = 0.0
        _listen()

    async def add(self, session: AsyncSession, row: dict[str, Any]) -> None:
        """Insert ``row`` in ``session``'s transaction (a Core insert: no ORM flush work); its
        commit wakes this relay."""
        await session.execute(INSERT, row)
        info = session.info
        relays = info.get(WAKE)
        if relays is None:
            info[WAKE] = [self]
        elif self not in relays:
            relays.append(self)

    def wake(self) -> None:
        """Publish soon (from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Relay until cancelled; errors (database or broker down) are logged and retried."""
        self._loop = asyncio.get_running_loop()
        requeue = self.conf.is_memory  # once, retried like a pass while the database is down
        next_poll = time.monotonic() + self._delay()
        while requeue:
            try:
                await self.requeue_unfinished()
                requeue = False
            except Exception as exc:
                self.failures += 1
                log.warning("tasks: outbox requeue failed (%s); retrying in %.1fs", one_line(exc), self._delay())
                await asyncio.sleep(self._delay())
        self.failures = 0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_poll - time.monotonic()))
                poll = False
            except TimeoutError:
                poll = True
            self._wake.clear()
            if not poll and self.failures:
                continue  # backing off: commits do not retry, the next poll does
            if not poll:
                await asyncio.sleep(COALESCE)  # under load, one pass for the commits of a few ms
            try:
                await self.relay_once(poll=poll)
            except Exception as exc:
                self.failures += 1
                log.warning("tasks: outbox relay failed (%s); retrying in %.1fs", one_line(exc), self._delay())
            if poll or self.failures:
                next_poll = time.monotonic() + self._delay()

    def _delay(self) -> float:
        return self.conf.outbox_relay_interval * min(2**self.failures, MAX_BACKOFF_POLLS)

    async def relay_once(self, poll: bool = True) -> int:
        """Publish every pending row (in batches); returns how many were sent. ``poll``: as the
        leader (PostgreSQL: skipped when another process holds the leader lock), and refresh
        the backlog figure and purge old rows."""
        async with self._lock:
            total, error = 0, None
            while poll and await self._due() == self.conf.outbox_batch_size:
                pass  # more rows are due: make them all pending before publishing
            while error is None:
                sent, full, error = await self._batch(leader=poll)
                total += sent
                if not full:
                    break
            if poll:
                await self._housekeeping()
        if error is not None:
            raise BrokerUnavailable(f"cannot publish outbox tasks: {error}")
        self.failures = 0
        return total

    async def _batch(self, leader: bool) -> tuple[int, bool, str | None]:
        query = (
            select(OUTBOX.c.id, OUTBOX.c.task, OUTBOX.c.payload)
            .where(OUTBOX.c.state == PENDING)
            .order_by(OUTBOX.c.created_at)
            .limit(self.conf.outbox_batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.connect() as conn:
            if self.locking:  # rows stay locked while they are published and marked
                async with conn.begin():
                    if leader and not (await conn.execute(LEAD)).scalar():
                        return 0, False, None
                    rows = (await conn.execute(query)).all()
                    sent, error = await self.publisher.publish_rows(rows) if rows else ([], None)
                    await self._mark(conn, rows, sent, error)
            else:  # SQLite: no write transaction may stay open while publishing
                async with conn.begin():
                    rows = (await conn.execute(query)).all()
                if not rows:
                    return 0, False, None
                sent, error = await self.publisher.publish_rows(rows)
                async with conn.begin():
                    await self._mark(conn, rows, sent, error)
        return len(sent), len(rows) == self.conf.outbox_batch_size, error

    async def _mark(self, conn: Any, rows: Sequence[Any], sent: list[str], error: str | None) -> None:
        if sent:  # a worker may have finished one already: never move a row backwards
            now = utcnow()
            done = update(OUTBOX).where(OUTBOX.c.id.in_(sent), OUTBOX.c.state == PENDING)
            await conn.execute(done.values(state=SENT, sent_at=now, due_at=now + self.redelivery))
        if error is not None and len(sent) < len(rows):
            failed = update(OUTBOX).where(OUTBOX.c.id == rows[len(sent)].id)
            await conn.execute(failed.values(attempts=OUTBOX.c.attempts + 1, last_error=error[:500]))

    async def _due(self) -> int:
        """As the leader: deferred rows due within the lead, and rows in flight for too long
        (``sent`` past ``due_at``; an abandoned claim), become pending (a batch of each);
        returns the larger count. Rows a worker holds locked (running, PostgreSQL) are skipped."""
        now = utcnow()
        # rows sent by older code have no due_at: they are left as they were (that code also
        # left failed tasks ``sent``, and running those again would repeat their side effects)
        overdue = OUTBOX.c.due_at < now
        abandoned = and_(OUTBOX.c.state == RUNNING, OUTBOX.c.claimed_at < now - self.lease - self.redelivery)
        lost = (
            select(OUTBOX.c.id)
            .where(or_(and_(OUTBOX.c.state == SENT, overdue), abandoned))
            .limit(self.conf.outbox_batch_size)
            .with_for_update(skip_locked=True)
        )
        soon = (
            select(OUTBOX.c.id)
            .where(OUTBOX.c.state == DEFERRED, OUTBOX.c.due_at <= now + timedelta(seconds=self.lead))
            .limit(self.conf.outbox_batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            if self.locking and not (await conn.execute(LEAD)).scalar():
                return 0
            due: list[str] = list((await conn.execute(soon)).scalars())
            if due:
                await conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(due)).values(state=PENDING))
            ids = list((await conn.execute(lost)).scalars())
            if ids:
                again = update(OUTBOX).where(OUTBOX.c.id.in_(ids), OUTBOX.c.state.in_((SENT, RUNNING)))
                reason = f"not run {self.conf.outbox_redelivery_timeout:g}s after its publish: published again"
                await conn.execute(
                    again.values(state=PENDING, claimed_at=None, attempts=OUTBOX.c.attempts + 1, last_error=reason)
                )
        if ids:
            self.metrics.incr("republished", len(ids))
            log.warning("tasks: %d outbox task(s) published but not run in time are published again", len(ids))
        return max(len(due), len(ids))

    async def _housekeeping(self) -> None:
        self.metrics.outbox_backlog = await self.backlog()
        if time.monotonic() - self._last_purge < PURGE_EVERY:
            return
        self._last_purge = time.monotonic()
        cutoff = utcnow() - timedelta(seconds=self.conf.outbox_retention)
        async with self.engine.begin() as conn:
            old = and_(OUTBOX.c.state.in_((SENT, DONE, FAILED)), OUTBOX.c.created_at < cutoff)
            await conn.execute(delete(OUTBOX).where(old))

    async def requeue_unfinished(self) -> int:
        """memory:// broker: tasks queued in memory died with their process; publish them
        again (a copy another live process still holds is skipped by its idempotency key;
        a claim is taken back only once it is older than ``visibility_timeout``)."""
        abandoned = and_(OUTBOX.c.state == RUNNING, OUTBOX.c.claimed_at < utcnow() - self.lease)
        async with self.engine.begin() as conn:
            again = update(OUTBOX).where(or_(OUTBOX.c.state == SENT, abandoned))
            result = await conn.execute(again.values(state=PENDING, claimed_at=None))
        if result.rowcount:
            log.info("tasks: %d outbox task(s) queued in memory before a restart are published again", result.rowcount)
        return int(result.rowcount or 0)

    async def backlog(self) -> int:
        """Pending rows right now."""
        async with self.engine.connect() as conn:
            count = select(func.count()).select_from(OUTBOX).where(OUTBOX.c.state == PENDING)
            return int((await conn.execute(count)).scalar() or 0)
