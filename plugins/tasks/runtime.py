"""Where tasks run their async parts: an event loop with the process's services, and the
outbox guard that runs an outbox task's side effect once per idempotency key."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fastplug.core import Services, one_line
from fastplug.plugins.tasks.models import DEFERRED, DONE, FAILED, FINISHED, PENDING, RUNNING, SENT, OutboxMessage

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


@dataclass(frozen=True, slots=True)
class Ending:
    """What becomes of an outbox row whose task raised: ``failed`` (final), or ``sent`` again
    (a retry or a requeue: in flight, published again if not run by ``again`` plus the
    redelivery timeout)."""

    state: str
    error: str | None = None
    again: datetime | None = None


Classify = Callable[[BaseException], "Ending | None"]  # None: as if never run (redelivered)


def default_ending(exc: BaseException) -> Ending | None:
    """An error fails the row; anything else (the process exiting) leaves it in flight."""
    return Ending(FAILED, one_line(exc)) if isinstance(exc, Exception) else None


class OutboxGuard:
    """Runs a body once per outbox row id (the task id), and marks the row ``done`` (or
    ``failed``, see :class:`Ending`) when it ran: until then the row is in flight.

    PostgreSQL: the row stays locked (``SELECT ... FOR UPDATE``) while the body runs and is
    marked in the same transaction; a duplicate waits for the lock and then sees it finished;
    a killed worker's lock goes with its connection, so a redelivery runs at once (and the
    relay, skipping locked rows, never republishes a running task). Other databases: the row
    is claimed (``running``) by a conditional update, renewed while the body runs; a claim
    not renewed for ``lease`` seconds counts as abandoned (its worker died).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        loop: asyncio.AbstractEventLoop,
        lease: float,
        redelivery: float = 600.0,
        classify: Classify = default_ending,
    ) -> None:
        self.engine, self.loop, self.lease = engine, loop, lease
        self.redelivery = timedelta(seconds=redelivery)
        self.classify = classify
        self.locking = engine.dialect.name == "postgresql"

    def once(self, key: str, body: Callable[[], T]) -> tuple[bool, T | None]:
        """``(True, body())``, or ``(False, None)`` when ``key`` is done (or failed) already.
        A row that does not exist (purged, or not an outbox task) runs unguarded."""
        return self._locked(key, body) if self.locking else self._claimed(key, body)

    def _ending(self, exc: BaseException | None) -> dict[str, Any] | None:
        """The row's new values after the body (``None``: leave it as it was)."""
        now = utcnow()
        if exc is None:
            return {"state": DONE, "done_at": now, "claimed_at": None}
        ending = self.classify(exc)
        if ending is None:
            return None
        error = (ending.error or "")[:500] or None
        if ending.state == SENT:
            again = max(ending.again or now, now) + self.redelivery
            return {"state": SENT, "due_at": again, "claimed_at": None, "last_error": error}
        return {"state": ending.state, "done_at": now, "claimed_at": None, "last_error": error}

    # PostgreSQL: row lock for the body's duration

    def _locked(self, key: str, body: Callable[[], T]) -> tuple[bool, T | None]:
        decided: concurrent.futures.Future[tuple[str | None, asyncio.Future[Any] | None]] = concurrent.futures.Future()
        held = asyncio.run_coroutine_threadsafe(self._hold(key, decided), self.loop)
        state, outcome = decided.result()
        if outcome is None:
            held.result()
            return (False, None) if state in FINISHED else (True, body())
        try:
            result = body()
        except BaseException as exc:
            self.loop.call_soon_threadsafe(outcome.set_result, self._ending(exc))
            concurrent.futures.wait([held])  # marked or rolled back; the body's error is the one to raise
            raise
        self.loop.call_soon_threadsafe(outcome.set_result, self._ending(None))
        held.result()  # committed: "done" is durable before the message is acknowledged
        return True, result

    async def _hold(self, key: str, decided: concurrent.futures.Future[Any]) -> None:
        try:
            async with self.engine.connect() as conn, conn.begin() as tx:
                query = select(OUTBOX.c.state).where(OUTBOX.c.id == key).with_for_update()
                state = (await conn.execute(query)).scalar()
                if state is None or state in FINISHED:
                    decided.set_result((state, None))
                    return
                outcome: asyncio.Future[dict[str, Any] | None] = self.loop.create_future()
                decided.set_result((state, outcome))
                values = await outcome
                if values is not None:
                    await conn.execute(update(OUTBOX).where(OUTBOX.c.id == key).values(**values))
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
        if state in FINISHED:
            return False, None
        if state == RUNNING:
            raise ClaimedElsewhere(key)
        renewing = asyncio.run_coroutine_threadsafe(self._renew(key), self.loop)
        try:
            result = body()
        except BaseException as exc:
            renewing.cancel()
            run_on(self.loop, self._finish(key, self._ending(exc) or {"state": SENT, "claimed_at": None}))
            raise
        renewing.cancel()
        run_on(self.loop, self._finish(key, self._ending(None) or {}))
        return True, result

    async def _renew(self, key: str) -> None:
        """Keep a running claim fresh, so only a dead worker's claim goes stale (a task that
        runs longer than the lease is not taken over by a redelivered copy)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(Exception):  # the database is busy: the next round
                async with self.engine.begin() as conn:
                    renew = update(OUTBOX).where(OUTBOX.c.id == key, OUTBOX.c.state == RUNNING)
                    await conn.execute(renew.values(claimed_at=utcnow()))

    async def _claim(self, key: str) -> str | None:
        now = utcnow()
        abandoned = and_(OUTBOX.c.state == RUNNING, OUTBOX.c.claimed_at < now - timedelta(seconds=self.lease))
        claim = (
            update(OUTBOX)
            .where(OUTBOX.c.id == key, or_(OUTBOX.c.state.in_((PENDING, SENT, DEFERRED)), abandoned))
            .values(state=RUNNING, claimed_at=now)
        )
        async with self.engine.begin() as conn:
            if (await conn.execute(claim)).rowcount:
                return "claimed"
            return (await conn.execute(select(OUTBOX.c.state).where(OUTBOX.c.id == key))).scalar()

    async def _finish(self, key: str, values: dict[str, Any]) -> None:
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
