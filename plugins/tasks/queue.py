"""The ``tasks`` service: enqueue in the request's transaction (outbox), or publish directly."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fastplug.plugins.tasks.celery_app import FastplugCelery
from fastplug.plugins.tasks.embedded import EmbeddedWorker
from fastplug.plugins.tasks.metrics import TaskMetrics
from fastplug.plugins.tasks.outbox import Relay, outbox_row
from fastplug.plugins.tasks.publisher import Publisher
from fastplug.plugins.tasks.runtime import utcnow


def task_name(task: Any) -> str:
    """A task's registered name, from the task object or the name itself."""
    name = task if isinstance(task, str) else getattr(task, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"expected a Celery task or a task name, got {task!r}")
    return name


def _options(queue: str | None, countdown: float | None, priority: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if queue is not None:
        options["queue"] = queue
    if countdown is not None:  # absolute, so a late publish (broker was down) does not add to it
        options["eta"] = (utcnow() + timedelta(seconds=countdown)).isoformat()
    if priority is not None:
        options["priority"] = priority
    return options


class TaskQueue:
    """What handlers and plugins use (``services["tasks"]``, or the typed dependency).

    ``enqueue`` writes an outbox row in the caller's session: the task is published only if
    the transaction commits, and is delivered at least once even if the broker is down at
    that moment (its id is an idempotency key: its side effect runs once). ``delay`` and
    ``apply_async`` publish now, off the event loop, within ``publish_timeout``: best-effort
    (no database needed; lost if the process dies first), like ``BackgroundTasks``.
    """

    def __init__(
        self, celery: FastplugCelery, publisher: Publisher, relay: Relay | None, embedded: EmbeddedWorker | None = None
    ) -> None:
        self.celery, self.publisher, self.relay, self.embedded = celery, publisher, relay, embedded

    @property
    def metrics(self) -> TaskMetrics:
        """This process's task figures."""
        return self.celery.fastplug.metrics

    async def enqueue(self, session: AsyncSession, task: Any, /, *args: Any, **kwargs: Any) -> str:
        """Enqueue ``task(*args, **kwargs)`` in ``session``'s transaction; returns the task id."""
        return await self.enqueue_apply(session, task, args, kwargs)

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
        """:meth:`enqueue` with options; ``args``/``kwargs`` must be JSON. A ``countdown``
        longer than the relay's lead stays in the outbox (``deferred``) until shortly before
        it is due: no broker holds it (Redis would deliver it again every ``visibility_timeout``)."""
        if self.relay is None:
            raise RuntimeError(
                "the task outbox is off (it needs the db plugin and [tasks] outbox); "
                "use delay()/apply_async() (best-effort) instead"
            )
        options = _options(queue, countdown, priority)
        defer = countdown is not None and countdown > self.relay.lead
        eta = datetime.fromisoformat(options["eta"]) if defer else None
        row = outbox_row(task_name(task), args, dict(kwargs or {}), options, defer_until=eta)
        await self.relay.add(session, row)
        return str(row["id"])

    async def delay(self, task: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Publish ``task(*args, **kwargs)`` now (best-effort); returns its ``AsyncResult``."""
        return await self.apply_async(task, args, kwargs)

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
        """:meth:`delay` with options. Raises ``ConnectionError`` (broker down) or
        ``TimeoutError`` (answered 503 + Retry-After by core); ``ValueError`` for a Redis
        broker and a ``countdown`` beyond ``visibility_timeout`` (it would run again and again:
        use :meth:`enqueue_apply`, which keeps it in the outbox until it is due)."""
        conf = self.celery.fastplug.conf
        if countdown is not None and conf.is_redis and countdown >= conf.visibility_timeout:
            raise ValueError(
                f"countdown {countdown:g}s is not below [tasks] visibility_timeout ({conf.visibility_timeout:g}s): "
                "Redis would deliver the task again while it waits; use enqueue_apply() (the outbox holds it "
                "until it is due) or raise visibility_timeout"
            )
        options = _options(queue, countdown, priority)
        return await self.publisher.send(task_name(task), args, dict(kwargs or {}), options)

    async def result(self, task_id: str, wait: float = 10.0) -> Any:
        """Wait (off the event loop, at most ``wait`` seconds) for a task's result."""
        async_result = self.celery.AsyncResult(task_id)
        return await asyncio.to_thread(async_result.get, timeout=wait)

    async def backlog(self) -> int | None:
        """Outbox rows not yet published (``None`` without the outbox)."""
        return None if self.relay is None else await self.relay.backlog()
