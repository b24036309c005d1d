"""First come, first served admission to the engine's pool."""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc


class FairGate:
    """First come, first served admission to the engine's pool, for request dependencies.

    SQLAlchemy's async pool queue lets a request that arrives just as a connection is
    returned take it ahead of requests already waiting (``asyncio.Queue`` barging): under
    load above the pool size some requests then wait seconds while others pass. The gate
    holds ``pool_size + max_overflow`` places and hands them out in arrival order, so the
    pool itself rarely has waiters. Waiting is bounded by ``[db] pool_timeout`` (503). Work
    outside requests (the outbox relay, health checks, tasks in the embedded worker) takes
    connections without the gate: at a full pool a request may then wait in the pool's own
    queue too, up to ``pool_timeout`` more.
    """

    __slots__ = ("places", "timeout")

    def __init__(self, places: int, timeout: float) -> None:
        self.places = asyncio.Semaphore(places)  # FIFO: a released place goes to the oldest waiter
        self.timeout = timeout

    async def __aenter__(self) -> None:
        places = self.places
        if not places.locked():
            await places.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(self.timeout):
                await places.acquire()
        except TimeoutError:
            raise sa_exc.TimeoutError(f"no database connection within {self.timeout} s") from None

    async def __aexit__(self, *exc: object) -> None:
        self.places.release()


class _NoGate:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


NO_GATE = _NoGate()
