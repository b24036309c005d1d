"""The Celery app of worker processes, built from the settings and the plugin graph.

``manage.py worker`` and ``beat`` use it, and so can Celery's own command line::

    FASTPLUG_SETTINGS=settings.toml celery -A fastplug.plugins.tasks.worker:celery_app inspect ping

Every worker process that executes tasks (the main one, and each prefork child after the
fork) runs the plugins' lifespans on an event loop thread of its own, so tasks have the
same services as handlers (``db.engine``...) and a forked child never uses its parent's
connections: it builds its own engine. The main process also runs the outbox relay.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastplug.config import Settings
from fastplug.core import Plugins
from fastplug.plugins.tasks.celery_app import FastplugCelery, build_celery
from fastplug.plugins.tasks.metrics import TaskMetrics
from fastplug.plugins.tasks.runtime import TaskRuntime, run_on
from fastplug.plugins.tasks.service import WORKER_CONTEXT, WorkerContext

log = logging.getLogger("fastplug.tasks")
START_TIMEOUT = 120.0  # the plugins' own startup timeouts apply inside
STOP_TIMEOUT = 60.0


class ProcessServices:
    """Every plugin's lifespan, run on an event loop thread of this process."""

    def __init__(self, settings: Settings, plugins: Plugins, celery: FastplugCelery, relay: bool) -> None:
        self.settings, self.plugins, self.celery, self.relay = settings, plugins, celery, relay
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fastplug-tasks-services", daemon=True)
        self._lifespan: AbstractAsyncContextManager[Any] | None = None

    def start(self) -> TaskRuntime:
        """Start the lifespans (the tasks plugin's registers this process's task runtime)."""
        self._thread.start()
        run_on(self.loop, self._enter(), START_TIMEOUT)
        runtime = self.celery.fastplug.runtimes.get(self.pid)
        if runtime is None:
            raise RuntimeError("the tasks plugin did not start in this worker process")
        return runtime

    async def _enter(self) -> None:
        from fastplug.core import Runtime, build_app

        app = build_app(self.settings, self.plugins)
        setattr(app.state, WORKER_CONTEXT, WorkerContext(self.celery, self.relay))
        Runtime.of(app).serves_http = False  # a worker: no metrics port of its own beside the server's
        self._lifespan = app.router.lifespan_context(app)
        await self._lifespan.__aenter__()

    def stop(self) -> None:
        """Stop the lifespans in reverse order, then the loop."""
        if self._lifespan is not None and os.getpid() == self.pid:
            try:
                run_on(self.loop, self._lifespan.__aexit__(None, None, None), STOP_TIMEOUT)
            except Exception:
                log.exception("tasks: stopping the worker's services failed")
            self._lifespan = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT)


def build_worker_app(settings: Settings, plugins: Plugins) -> FastplugCelery:
    """The Celery app for ``celery worker``: its processes start their services on their own."""
    from celery import signals

    app = build_celery(settings, plugins)
    state = app.fastplug
    started: dict[int, ProcessServices] = {}
    main_pid = [os.getpid()]
    lock = threading.Lock()

    def start_runtime() -> TaskRuntime:
        with lock:
            pid = os.getpid()
            if pid in state.runtimes:
                return state.runtimes[pid]
            services = ProcessServices(settings, plugins, app, relay=pid == main_pid[0])
            started[pid] = services
            return services.start()

    def stop_runtime() -> None:
        services = started.pop(os.getpid(), None)
        if services is not None:
            services.stop()

    sweepers: list[Any] = []

    def on_worker_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            main_pid[0] = os.getpid()
            start_runtime()  # before the pool forks: SQLite migrates once, here

    def on_worker_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app and state.conf.is_redis:
            from fastplug.plugins.tasks.redelivery import Sweeper, kombu_sweeps

            if not kombu_sweeps():  # an older kombu sweeps every 100 s only
                sweepers.append(Sweeper(app, state.conf.redis_restore_interval))
                sweepers[-1].start()

    def on_process_init(**_: Any) -> None:
        if os.getpid() in state.runtimes:  # solo pool: the main process
            return
        state.metrics = TaskMetrics()  # this child's own figures
        try:
            start_runtime()
        except Exception:  # the first task that needs it tries again
            log.exception("tasks: worker process %d could not start its services", os.getpid())

    def on_process_shutdown(**_: Any) -> None:
        if os.getpid() != main_pid[0]:
            stop_runtime()

    def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            while sweepers:
                sweepers.pop().stop()
            stop_runtime()

    state.start_runtime = start_runtime
    uid = f"fastplug-tasks-{id(app)}"
    signals.worker_init.connect(on_worker_init, weak=False, dispatch_uid=f"{uid}-init")
    signals.worker_ready.connect(on_worker_ready, weak=False, dispatch_uid=f"{uid}-ready")
    signals.worker_process_init.connect(on_process_init, weak=False, dispatch_uid=f"{uid}-process-init")
    signals.worker_process_shutdown.connect(on_process_shutdown, weak=False, dispatch_uid=f"{uid}-process-shutdown")
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid=f"{uid}-shutdown")
    return app


_app: FastplugCelery | None = None


def __getattr__(name: str) -> Any:
    # ``celery_app`` (also ``app``/``celery``, the names Celery's -A looks for) is built on
    # first use from $FASTPLUG_SETTINGS / $FASTPLUG_ENV: importing this module loads nothing.
    global _app
    if name not in ("celery_app", "app", "celery"):
        raise AttributeError(name)
    if _app is None:
        from fastplug.core import load

        settings, plugins = load()
        if "tasks" not in plugins.names:
            raise RuntimeError(f"the tasks plugin is not enabled in {settings.path}")
        _app = build_worker_app(settings, plugins)
    return _app
