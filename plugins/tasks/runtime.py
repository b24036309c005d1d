"""Where tasks run their async parts: an event loop with the process's services, and the
outbox guard that runs an outbox task's side effect once per idempotency key."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fastplug.core import Services
from fastplug.plugins.tasks.models import DONE, PENDING, RUNNING, SENT, OutboxMessage

T = TypeVar("T")
OUTBOX = OutboxMessage.__table__


class ClaimedElsewhere(Exception):  # noqa: N818 - reads as the condition it is
    """Another worker holds this outbox task (SQLite claims): try again later."""


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def run_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on ``loop`` (running in another thread) and wait for its result."""
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if current is loop:
        coro.close()
        raise RuntimeError("a task cannot wait for its event loop from that loop's own thread")
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


class OutboxGuard:
    """Runs a body once per outbox row id (the task id).

    PostgreSQL: the row stays locked (``SELECT ... FOR UPDATE``) while the body runs and is
    marked done in the same transaction; a duplicate waits for the lock and then sees
    ``done``; a killed worker's lock goes with its connection, so a redelivery runs at once.
    Other databases: the row is claimed (``running``) by a conditional update; a claim older
    than ``lease`` seconds counts as abandoned.
    """

    def __init__(self, engine: AsyncEngine, loop: asyncio.AbstractEventLoop, lease: float) -> None:
        self.engine, self.loop, self.lease = engine, loop, lease
        self.locking = engine.dialect.name == "postgresql"

    def once(self, key: str, body: Callable[[], T]) -> tuple[bool, T | None]:
        """``(True, body())``, or ``(False, None)`` when ``key`` is done already. A row that
        does not exist (purged, or not an outbox task) runs unguarded."""
        return self._locked(key, body) if self.locking else self._claimed(key, body)

    # PostgreSQL: row lock for the body's duration

    def _locked(self, key: str, body: Callable[[], T]) -> tuple[bool, T | None]:
        decided: concurrent.futures.Future[tuple[str | None, asyncio.Future[bool] | None]] = concurrent.futures.Future()
        held = asyncio.run_coroutine_threadsafe(self._hold(key, decided), self.loop)
        state, outcome = decided.result()
        if outcome is None:
            held.result()
            return (False, None) if state == DONE else (True, body())
        try:
            result = body()
        except BaseException:
            self.loop.call_soon_threadsafe(outcome.set_result, False)
            concurrent.futures.wait([held])  # rolled back; the body's error is the one to raise
            raise
        self.loop.call_soon_threadsafe(outcome.set_result, True)
        held.result()  # committed: "done" is durable before the message is acknowledged
        return True, result

    async def _hold(self, key: str, decided: concurrent.futures.Future[Any]) -> None:
        try:
            async with self.engine.connect() as conn, conn.begin() as tx:
                query = select(OUTBOX.c.state).where(OUTBOX.c.id == key).with_for_update()
                state = (await conn.execute(query)).scalar()
                if state is None or state == DONE:
                    decided.set_result((state, None))
                    return
                outcome: asyncio.Future[bool] = self.loop.create_future()
                decided.set_result((state, outcome))
                if await outcome:
                    done = update(OUTBOX).where(OUTBOX.c.id == key).values(state=DONE, done_at=utcnow())
                    await conn.execute(done)
                else:
                    await tx.rollback()
        except BaseException as exc:
            if not decided.done():
                decided.set_exception(exc)
            raise

    # other databases: a claim with a lease

    def _claimed(self, key: str, body: Callable[[], T]) -> tuple[bool, T | None]:
        state = run_on(self.loop, self._claim(key))
        if state is None:
            return True, body()
        if state == DONE:
            return False, None
        if state == RUNNING:
            raise ClaimedElsewhere(key)
        try:
            result = body()
        except BaseException:
            run_on(self.loop, self._finish(key, SENT))
            raise
        run_on(self.loop, self._finish(key, DONE))
        return True, result

    async def _claim(self, key: str) -> str | None:
        now = utcnow()
        abandoned = and_(OUTBOX.c.state == RUNNING, OUTBOX.c.claimed_at < now - timedelta(seconds=self.lease))
        claim = (
            update(OUTBOX)
            .where(OUTBOX.c.id == key, or_(OUTBOX.c.state.in_((PENDING, SENT)), abandoned))
            .values(state=RUNNING, claimed_at=now)
        )
        async with self.engine.begin() as conn:
            if (await conn.execute(claim)).rowcount:
                return "claimed"
            return (await conn.execute(select(OUTBOX.c.state).where(OUTBOX.c.id == key))).scalar()

    async def _finish(self, key: str, state: str) -> None:
        values: dict[str, Any] = {"state": state, "claimed_at": None}
        if state == DONE:
            values["done_at"] = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(update(OUTBOX).where(OUTBOX.c.id == key, OUTBOX.c.state == RUNNING).values(**values))


@dataclass(slots=True)
class TaskRuntime:
    """This process's event loop (running in another thread than the task's) and services."""

    loop: asyncio.AbstractEventLoop
    services: Services
    guard: OutboxGuard | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run an ``async def`` task's coroutine on the loop and wait for it."""
        return run_on(self.loop, coro, timeout)
