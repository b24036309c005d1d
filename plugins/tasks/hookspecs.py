"""The hook the tasks plugin adds for other plugins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastplug.core import hookspec

if TYPE_CHECKING:
    from celery import Celery

    from fastplug.config import Settings


@hookspec
def register_tasks(celery_app: Celery, settings: Settings) -> Sequence[Any] | None:
    """Define tasks on ``celery_app`` (``@celery_app.task(name="orders.confirm")``, plain or
    ``async def``) and periodic ones (``celery_app.conf.beat_schedule[...] = {...}``).

    Fires once per Celery app built from the settings: in the server (lifespan), in
    ``manage.py worker``/``beat`` and in ``fastplug.plugins.tasks.worker:celery_app``. Name tasks
    explicitly and enqueue them by name. A task declared with ``bind=True`` reaches the
    process's services as ``self.services``. Implement it with ``@hookimpl(optionalhook=True)``.
    """
