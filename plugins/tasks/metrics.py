"""Task figures of this process: the ``tasks.metrics`` service."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

COUNTERS = {
    "sent": "Tasks published to the broker by this process",
    "publish_errors": "Publishes that failed or timed out",
    "succeeded": "Tasks that succeeded in this process",
    "failed": "Tasks that failed in this process",
    "retried": "Task retries in this process",
    "duplicates": "Duplicate deliveries of an outbox task that were skipped (idempotency key)",
    "republished": "Outbox tasks published again because they had not run in time (lost by the broker?)",
}


@dataclass(slots=True)
class TaskMetrics:
    """Counters (thread-safe: worker threads count too) and the outbox backlog, which the
    relay refreshes on every poll (``None`` without the outbox)."""

    sent: int = 0
    publish_errors: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    duplicates: int = 0
    republished: int = 0
    outbox_backlog: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def incr(self, name: str, by: int = 1) -> None:
        """Add ``by`` to counter ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    def as_dict(self) -> dict[str, int | None]:
        """Every figure by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
