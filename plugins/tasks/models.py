"""The outbox table: one row per task enqueued inside a database transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fastplug.plugins.db.api import Base

PENDING, SENT, RUNNING, DONE = "pending", "sent", "running", "done"
DEFERRED, FAILED = "deferred", "failed"
FINISHED = (DONE, FAILED)  # a delivery of these skips the side effect


class OutboxMessage(Base):
    """A task to publish once its transaction committed. ``id`` is the Celery task id and
    the idempotency key: the worker runs a given id's side effect once.

    States: ``deferred`` (an eta beyond the relay's lead: published shortly before
    ``due_at``), ``pending`` (to publish), ``sent`` (published, not yet run: published again
    once ``due_at`` passed), ``running`` (claimed by a worker; not PostgreSQL, where the
    worker holds a row lock instead), ``done`` or ``failed`` (the task ran: final).
    """

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
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # deferred: eta; sent: republish

    __table_args__ = (
        Index("ix_tasks_outbox_state_created_at", "state", "created_at"),
        Index("ix_tasks_outbox_state_due_at", "state", "due_at"),
    )
