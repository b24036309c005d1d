"""A Celery worker inside the server process: its consumer in a thread, tasks in a thread
pool, never on the event loop (``async def`` tasks are handed to the loop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from typing import Any

from fastplug.plugins.tasks.celery_app import FastplugCelery

log = logging.getLogger("fastplug.tasks")
WAKE_TASK = "fastplug.tasks.wake"  # a no-op: wakes the consumer loop so it sees it must stop
READY_TIMEOUT = 30.0


class EmbeddedWorker:
    """``celery worker --pool threads`` on a thread of this process."""

    def __init__(self, app: FastplugCelery, concurrency: int) -> None:
        self.app, self.concurrency = app, concurrency
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.worker: Any = None
        if WAKE_TASK not in app.tasks:
            app.task(name=WAKE_TASK, ignore_result=True)(_noop)

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs."""
        return self._thread is not None and self._thread.is_alive()

    async def start(self) -> None:
        """Start the worker and wait until it consumes."""
        from celery.worker import state

        state.should_stop = None
        self.app.set_default()  # the pool's threads find their tasks through the default app
        self.worker = self.app.WorkController(
            hostname=f"embedded-{os.getpid()}@{socket.gethostname()}",
            pool_cls="threads",
            concurrency=self.concurrency,
            queues=self.app.fastplug.conf.queues,  # the default queue and every [tasks] routes queue
            ready_callback=lambda *_: self._ready.set(),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
        )
        self._thread = threading.Thread(target=self.worker.start, name="fastplug-tasks-worker", daemon=True)
        self._thread.start()
        if not await asyncio.to_thread(self._ready.wait, READY_TIMEOUT) or not self.alive:
            await self.stop()
            raise RuntimeError(f"the embedded worker did not start within {READY_TIMEOUT:g}s")
        from celery._state import _set_task_join_will_block

        _set_task_join_will_block(False)  # its pool set it for the whole process: handlers may wait for results

    async def stop(self) -> None:
        """Warm shutdown: running tasks finish (bounded by core's shutdown timeout)."""
        from celery.worker import state

        if self._thread is None:
            return
        state.should_stop = 0
        try:
            for _ in range(2):  # its loop may sleep for seconds: wake it (it checks, then drains once more)
                with contextlib.suppress(Exception):
                    self.app.send_task(WAKE_TASK, queue=self.app.conf.task_default_queue, ignore_result=True)
            await asyncio.to_thread(self._thread.join)
        finally:
            state.should_stop = None
            self._thread = None


def _noop() -> None:
    """Nothing: a message that only wakes the worker."""
