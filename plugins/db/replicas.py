"""Read replicas (``[db] read_urls``): which one a read runs on, their lag, their failures.

The read paths (``DbReadSession``, ``DbReadConnection``, ``DbReader``) take a replica in
turn among the usable ones. They read on the primary instead in a request that has a write
session (``DbSession``: it sees its own writes) and while ``fastplug.core.FRESH_READS`` is
set (the cache filling an entry: what it stores is served to others, and must not be older
than a write whose invalidation came first). A replica is left out while:

* a connection to it failed, for ``replica_retry`` seconds (the read that met the failure
  runs again on the primary: reads are safe to repeat);
* its lag, checked every ``replica_check_interval`` seconds, is over ``replica_max_lag``
  (the lag: how long ago the primary was at the WAL position the standby has replayed), or
  the check itself failed.

With no usable replica, reads run on the primary. Writes and the outbox never use replicas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from fastplug.core import FRESH_READS, one_line
from fastplug.plugins.db.errors import BUSY, DatabaseUnavailable, unavailable
from fastplug.plugins.db.rawpool import BoundedPool

log = logging.getLogger("fastplug.db")

WRITER: ContextVar[bool] = ContextVar("fastplug_db_writer", default=False)
"""Set in a request that took a write session: its later reads run on the primary."""

PRIMARY_LSN = text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
REPLAYED_LSN = text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
"""WAL positions as byte offsets: the primary's now, and what a standby has replayed
(NULL with ``false`` on a server that is not a standby)."""


@dataclass(eq=False)
class Replica:
    """One standby: its engine (autocommit, as the primary's read engine), its raw pool."""

    name: str  # host:port/database, no credentials: for logs, health and metrics labels
    engine: AsyncEngine
    read_engine: AsyncEngine
    raw: BoundedPool | None = None
    raw_pool: Any = None  # the asyncpg pool behind ``raw``, closed at shutdown
    down_until: float = 0.0
    lag: float | None = None  # seconds, from the last check (None: not checked yet)
    reason: str = ""  # why it is left out ("" when usable)

    def figures(self) -> dict[str, Any]:
        """What health and metrics show of it."""
        return {"usable": not self.reason, "lag": self.lag, "reason": self.reason}


def replica_name(url: str) -> str:
    """``host:port/database`` of a database URL (no user, no password)."""
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass(eq=False)
class Replicas:
    """The replicas of ``[db] read_urls`` and the rules above."""

    replicas: list[Replica]
    max_lag: float
    retry: float
    interval: float
    _turn: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, primary's WAL position)
    _usable: list[Replica] = field(default_factory=list)
    _route_writes: dict[int, bool] = field(default_factory=dict)  # by id(): routes live as long as the app

    def __post_init__(self) -> None:
        self._usable = list(self.replicas)

    def pick(self, scope: Any = None) -> Replica | None:
        """The replica for the next read, or None for the primary (a writing request, or
        none usable). ``scope``: the request's, when known."""
        usable = self._usable
        if not usable or WRITER.get() or FRESH_READS.get() or (scope is not None and self._writes(scope)):
            return None
        self._turn = (self._turn + 1) % len(usable)  # a replica that failed is out of usable until checked
        return usable[self._turn]

    def _writes(self, scope: Any) -> bool:
        """Whether the request's route takes a write session (known before its handler runs,
        whatever the order of its dependencies)."""
        route = scope.get("route")
        if route is None:
            return False
        known = self._route_writes.get(id(route))
        if known is None:
            from fastplug.plugins.db.deps import takes_write_session

            known = self._route_writes[id(route)] = takes_write_session(route)
        return known

    def failed(self, replica: Replica, exc: DatabaseUnavailable) -> None:
        """A connection to ``replica`` failed: leave it out for ``retry`` seconds (not when
        its pool was only busy: the primary takes that read, the replica the next one)."""
        if exc.detail == BUSY:
            return
        replica.down_until = time.monotonic() + self.retry
        if not replica.reason:
            log.warning("db: replica %s left out for %gs: %s", replica.name, self.retry, one_line(exc))
        self._leave_out(replica, f"connection failed: {one_line(exc)}")

    def _leave_out(self, replica: Replica, reason: str) -> None:
        replica.reason = reason
        self._usable = [r for r in self.replicas if not r.reason]

    def _take_back(self, replica: Replica) -> None:
        if replica.reason:
            log.info("db: replica %s is used again (lag %.2fs)", replica.name, replica.lag or 0.0)
        replica.reason = ""
        replica.down_until = 0.0
        self._usable = [r for r in self.replicas if not r.reason]

    async def check(self, replica: Replica, now: float) -> None:
        """Measure ``replica``'s lag once (against :attr:`samples`) and leave it out or take it back."""
        if replica.down_until > now:
            return
        try:
            async with asyncio.timeout(max(self.interval, 1.0)):
                async with replica.read_engine.connect() as connection:
                    standby, replayed = (await connection.execute(REPLAYED_LSN)).one()
        except Exception as exc:
            replica.lag = None
            if not replica.reason:
                log.warning("db: replica %s left out: its lag check failed: %s", replica.name, one_line(exc))
            self._leave_out(replica, f"lag check failed: {one_line(exc)}")
            return
        if not standby or replayed is None:
            replica.lag = None
            self._leave_out(replica, "not a standby (pg_is_in_recovery() is false)")
            return
        replica.lag = self._lag(int(replayed), now)
        if replica.lag > self.max_lag:
            if not replica.reason.startswith("lag"):
                log.warning(
                    "db: replica %s left out: %.1fs behind (replica_max_lag %g)",
                    replica.name,
                    replica.lag,
                    self.max_lag,
                )
            self._leave_out(replica, f"lag {replica.lag:.1f}s over {self.max_lag:g}s")
        else:
            self._take_back(replica)

    def _lag(self, replayed: int, now: float) -> float:
        """Seconds since the primary was where the standby has replayed to: 0 when it has the
        primary's latest position; else the age of the newest sample it has reached (or of the
        oldest kept, when it has reached none). Unlike the age of the last replayed
        transaction, an idle primary does not make a caught-up standby look behind."""
        reached: float | None = None
        for at, position in reversed(self.samples):
            if position <= replayed:
                reached = at
                break
        if reached is None:
            return now - self.samples[0][0] if self.samples else 0.0
        return 0.0 if reached == self.samples[-1][0] else now - reached

    async def watch(self, primary: AsyncEngine) -> None:
        """Every ``interval`` seconds: the primary's WAL position, then every replica's lag
        against the positions of the last ``2 * max_lag`` seconds; until cancelled. While the
        primary does not answer, replicas keep their state."""
        keep = max(4, int(2 * self.max_lag / self.interval) + 2)
        while True:
            try:
                async with asyncio.timeout(max(self.interval, 1.0)):
                    async with primary.connect() as connection:
                        position = int((await connection.execute(PRIMARY_LSN)).scalar_one())
            except Exception as exc:
                log.debug("db: the replicas' lag check could not ask the primary: %s", one_line(exc))
            else:
                now = time.monotonic()
                self.samples.append((now, position))
                del self.samples[:-keep]
                await asyncio.gather(*(self.check(r, now) for r in self.replicas))
            await asyncio.sleep(self.interval)

    def figures(self) -> dict[str, dict[str, Any]]:
        """Each replica's figures, by name."""
        return {r.name: r.figures() for r in self.replicas}


async def on_replica(replicas: Replicas | None, scope: Any, run: Callable[[Replica | None], Awaitable[Any]]) -> Any:
    """``run(replica)`` on the replica :meth:`Replicas.pick` gives; when connecting to it
    fails, the replica is left out and ``run(None)`` (the primary) answers instead."""
    replica = replicas.pick(scope) if replicas is not None else None
    if replica is None:
        return await run(None)
    try:
        return await run(replica)
    except Exception as exc:
        down = unavailable(exc)  # the server could not answer; an error of the query itself is raised
        if down is None or replicas is None:
            raise
        replicas.failed(replica, down)
    return await run(None)
