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

from typing import TYPE_CHECKING, Any

from fastplug.core import service

if TYPE_CHECKING:
    from fastplug.plugins.tasks.queue import TaskQueue

SERVICE = "tasks"
"""The service key of the :class:`TaskQueue`."""
CELERY = "tasks.celery"
"""The service key of this process's Celery app."""
METRICS = "tasks.metrics"
"""The service key of this process's task figures (for metrics)."""

Tasks = service(SERVICE, object)
"""The tasks plugin's :class:`TaskQueue` for handlers: ``async def h(..., tasks: Tasks)``."""


def __getattr__(name: str) -> Any:
    # TaskQueue is the implementation itself (one definition, no Protocol copying it),
    # imported only when asked for: it pulls in Celery.
    if name == "TaskQueue":
        from fastplug.plugins.tasks.queue import TaskQueue

        return TaskQueue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CELERY", "METRICS", "SERVICE", "TaskQueue", "Tasks"]
