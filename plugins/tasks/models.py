"""The outbox table: one row per task enqueued inside a database transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fastplug.plugins.db.api import Base

PENDING, SENT, RUNNING, DONE = "pending", "sent", "running", "done"


class OutboxMessage(Base):
    """A task to publish once its transaction committed. ``id`` is the Celery task id and
    the idempotency key: the worker runs a given id's side effect once (``state = done``)."""

    __tablename__ = "tasks_outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)  # JSON: {"args": [...], "kwargs": {...}, "options": {...}}
    state: Mapped[str] = mapped_column(String(8), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_tasks_outbox_state_created_at", "state", "created_at"),)
