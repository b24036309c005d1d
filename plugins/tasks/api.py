"""The background-task contract plugins and apps build on (the ``tasks`` plugin implements it).

Enqueue in the request's transaction: published once it commits, delivered even if the broker
is down at that moment, its side effect run once per task id::

    from fastplug.plugins.db.api import DbSession
    from fastplug.plugins.tasks.api import Tasks

    @router.post("/orders", status_code=201)
    async def create_order(body: OrderIn, session: DbSession, tasks: Tasks) -> OrderOut:
        order = Order(**body.model_dump())
        session.add(order)
        await session.flush()
        await tasks.enqueue(session, "orders.send_confirmation", order.id)
        return OrderOut.model_validate(order)

``await tasks.delay("orders.send_confirmation", order.id)`` publishes at once instead:
best-effort (no database needed; lost if the process dies first), like FastAPI's
``BackgroundTasks``. Without the tasks plugin, ``Tasks`` answers 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from fastplug.core import service

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

SERVICE = "tasks"
CELERY = "tasks.celery"
METRICS = "tasks.metrics"


class TaskQueue(Protocol):
    """What the tasks plugin offers handlers and plugins (``services["tasks"]``). ``task`` is a
    task's registered name (or the Celery task object); arguments must be JSON."""

    async def enqueue(self, session: AsyncSession, task: Any, /, *args: Any, **kwargs: Any) -> str:
        """Write the task to the outbox in ``session``'s transaction; returns its id."""
        ...

    async def enqueue_apply(
        self,
        session: AsyncSession,
        task: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        countdown: float | None = None,
        priority: int | None = None,
    ) -> str:
        """:meth:`enqueue` with options."""
        ...

    async def delay(self, task: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Publish now, off the event loop, within ``[tasks] publish_timeout`` (best-effort);
        returns the Celery ``AsyncResult``."""
        ...

    async def apply_async(
        self,
        task: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        countdown: float | None = None,
        priority: int | None = None,
    ) -> Any:
        """:meth:`delay` with options."""
        ...

    async def result(self, task_id: str, wait: float = 10.0) -> Any:
        """A task's result from the result backend, waiting at most ``wait`` seconds."""
        ...

    async def backlog(self) -> int | None:
        """Outbox rows not yet published (``None`` without the outbox)."""
        ...


Tasks = service(SERVICE, TaskQueue)
"""The :class:`TaskQueue` for handlers: ``async def h(..., tasks: Tasks)``."""
