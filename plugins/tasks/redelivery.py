"""Redis: tasks a dead worker took come back once ``visibility_timeout`` passed, when a
worker sweeps for them. kombu >= 5.7 sweeps every ``redis_restore_interval`` (transport
options from :func:`~fastplug.plugins.tasks.celery_app.redis_restore_options`); with an older
kombu (a sweep every 100 s) ``manage.py worker`` runs :class:`Sweeper` instead."""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastplug.core import one_line

log = logging.getLogger("fastplug.tasks")


def kombu_sweeps() -> bool:
    """Whether this kombu takes the sweep interval as a transport option."""
    from kombu.transport.redis import Channel

    return "unacked_restore_interval" in Channel.from_transport_options


def sweep_once(app: Any) -> None:
    """Put the tasks unacknowledged for longer than ``visibility_timeout`` back in their
    queues (kombu's own sweep, called directly; safe next to other workers' sweeps)."""
    with app.connection_for_read() as conn:
        conn.default_channel.qos.restore_visible(num=None, interval=1)


class Sweeper:
    """:func:`sweep_once` every ``interval`` seconds on a daemon thread."""

    def __init__(self, app: Any, interval: float) -> None:
        self.app, self.interval = app, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastplug-tasks-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep_once(self.app)
            except Exception as exc:  # broker down: the next sweep tries again
                log.debug("tasks: sweep for unacknowledged tasks failed: %s", one_line(exc))
