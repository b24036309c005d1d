"""The Celery app, built from the settings and the plugin graph (no ASGI app needed).

Imported only when a Celery app is built (celery is not imported by a disabled plugin).
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry

from fastplug.config import Settings
from fastplug.core import Plugins, ServiceMissing, Services, one_line
from fastplug.plugins.tasks.metrics import TaskMetrics
from fastplug.plugins.tasks.models import DONE, FAILED, SENT
from fastplug.plugins.tasks.runtime import ClaimedElsewhere, Ending, TaskRuntime, utcnow
from fastplug.plugins.tasks.settings import TasksSettings, outbox_enabled

OUTBOX_HEADER = "fastplug_outbox"  # set on tasks the relay publishes: their id is an idempotency key
MEMORY_POLL = 0.05  # seconds between polls of the in-process broker's queues (kombu's default: 1)
CLAIMED_RETRY_MAX = 60  # longest wait before retrying an outbox task another worker holds (SQLite)
REDIS_MUTEX_EXPIRE = 30  # seconds a sweep's lock outlives a worker killed mid-sweep (kombu's default: 300)
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


@dataclass(slots=True)
class CeleryState:
    """What fastplug keeps on its Celery app (``celery_app.fastplug``)."""

    settings: Settings
    plugins: Plugins
    conf: TasksSettings
    outbox: bool
    metrics: TaskMetrics = field(default_factory=TaskMetrics)
    runtimes: dict[int, TaskRuntime] = field(default_factory=dict)
    start_runtime: Callable[[], TaskRuntime] | None = None  # worker processes start theirs on demand

    def runtime(self) -> TaskRuntime | None:
        """The task runtime of this process (a forked child does not use its parent's)."""
        found = self.runtimes.get(os.getpid())
        if found is None and self.start_runtime is not None:
            found = self.start_runtime()
        return found


class FastplugTask(Task):  # type: ignore[misc]
    """The base of every task: runs ``async def`` tasks on the process's event loop, runs an
    outbox task's side effect once per idempotency key, and counts outcomes."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request_stack.top
        if request is None or request.called_directly:  # a plain call: Celery's own behaviour
            return super().__call__(*args, **kwargs)  # (an async task returns its coroutine)
        state: CeleryState = self.app.fastplug
        key = request.id if (request.headers or {}).get(OUTBOX_HEADER) and state.outbox else None
        runtime = state.runtime() if key or self._is_async else None
        if key is None or runtime is None or runtime.guard is None:
            return self._execute(runtime, args, kwargs)
        try:
            ran, result = runtime.guard.once(key, lambda: self._execute(runtime, args, kwargs))
        except ClaimedElsewhere as exc:
            countdown = min(2**request.retries, CLAIMED_RETRY_MAX)
            raise self.retry(exc=exc, countdown=countdown, max_retries=None) from exc
        if not ran:
            state.metrics.incr("duplicates")
            raise Ignore()  # acknowledged; the first run's result stays
        return result

    @property
    def services(self) -> Services:
        """This process's services (``db.sessionmaker``, ``redis.client``...), for tasks
        declared with ``bind=True``: ``self.services["db.sessionmaker"]``."""
        runtime = self.app.fastplug.runtime()
        if runtime is None:
            raise ServiceMissing("no services in this process: is it a fastplug server or manage.py worker?")
        return runtime.services

    @property
    def _is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)

    def _execute(self, runtime: TaskRuntime | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = self.run(*args, **kwargs)
        if inspect.iscoroutine(result):
            if runtime is None:
                import asyncio

                return asyncio.run(result)
            return runtime.run(result)
        return result

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self.app.fastplug.metrics.incr("succeeded")

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.app.fastplug.metrics.incr("failed")

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.app.fastplug.metrics.incr("retried")


def task_ending(exc: BaseException) -> Ending | None:
    """What an outbox task's exception makes of its row: a retry or a requeue keeps it in
    flight (due again at the retry's time), ``Ignore`` is done, another error fails it for
    good (as Celery acknowledges it); a process exiting (``BaseException``) leaves it as it was."""
    if isinstance(exc, Retry):
        when = exc.when
        if isinstance(when, datetime):
            again = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        else:
            again = utcnow() + timedelta(seconds=float(when or 0))
        return Ending(SENT, f"retrying: {exc}", again)
    if isinstance(exc, Reject):
        return Ending(SENT, "rejected, requeued") if exc.requeue else Ending(FAILED, f"rejected: {exc.reason}")
    if isinstance(exc, Ignore):
        return Ending(DONE)
    return Ending(FAILED, one_line(exc)) if isinstance(exc, Exception) else None


_publishing = threading.local()


@contextmanager
def without_result_listener() -> Iterator[None]:
    """Publish in this block without the result backend listening for the result (Redis
    subscribes per task id at publish time): for tasks nobody here waits for (the relay's)."""
    _publishing.quiet = True
    try:
        yield
    finally:
        _publishing.quiet = False


class FastplugCelery(Celery):  # type: ignore[misc]
    """Celery with per-app tasks (not shared with every app in the process) and publish counts."""

    fastplug: CeleryState

    def _get_backend(self) -> Any:
        backend = super()._get_backend()
        on_task_call = backend.on_task_call

        def listen_unless_quiet(producer: Any, task_id: str) -> None:
            if not getattr(_publishing, "quiet", False):
                on_task_call(producer, task_id)

        backend.on_task_call = listen_unless_quiet
        self.__dict__.setdefault("_fastplug_backends", []).append(backend)  # one per thread, for some
        return backend

    def close(self) -> None:
        """Also stop listening for results: nothing waits for them once the app is closed."""
        for backend in self.__dict__.pop("_fastplug_backends", []):
            consumer = getattr(backend, "result_consumer", None)
            if consumer is not None and hasattr(consumer, "subscribed_to"):
                consumer.subscribed_to.clear()
                consumer.stop()
        super().close()

    def task(self, *args: Any, **opts: Any) -> Any:
        opts.setdefault("shared", False)
        return super().task(*args, **opts)

    def send_task(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super().send_task(*args, **kwargs)
        except Exception:
            self.fastplug.metrics.incr("publish_errors")
            raise
        self.fastplug.metrics.incr("sent")
        return result


def redis_restore_options(interval: float) -> dict[str, Any]:
    """Redis transport options for a sweep every ``interval`` seconds (kombu >= 5.7; older
    versions sweep every 100 s and ignore them: the worker then sweeps itself, see
    :mod:`fastplug.plugins.tasks.redelivery`)."""
    return {
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": 1,  # every timer tick scans (kombu's default: every 10th)
        "unacked_mutex_expire": REDIS_MUTEX_EXPIRE,
    }


def celery_config(conf: TasksSettings) -> dict[str, Any]:
    """Celery settings from ``[tasks]``; ``[tasks.celery]`` goes on top (transport options merge)."""
    transport: dict[str, Any] = {"visibility_timeout": conf.visibility_timeout}
    if conf.is_memory:
        transport["polling_interval"] = MEMORY_POLL
    if conf.is_redis:
        transport["socket_connect_timeout"] = conf.publish_timeout
        transport.update(redis_restore_options(conf.redis_restore_interval))
    backend = conf.result_backend or ("cache+memory://" if conf.is_memory else None)
    config: dict[str, Any] = {
        "broker_url": conf.broker_url,
        "result_backend": backend,
        "task_default_queue": conf.task_default_queue,
        "task_acks_late": conf.acks_late,
        "task_reject_on_worker_lost": conf.task_reject_on_worker_lost,
        "worker_prefetch_multiplier": 1 if conf.acks_late else 4,
        "broker_connection_timeout": conf.publish_timeout,
        "broker_pool_acquire_timeout": conf.publish_timeout,
        "broker_connection_retry_on_startup": True,
        "task_publish_retry_policy": dict(PUBLISH_RETRY_POLICY),
        "enable_utc": True,
        "timezone": "UTC",
    }
    if conf.routes:
        config["task_routes"] = {pattern: {"queue": queue} for pattern, queue in conf.routes.items()}
    if conf.queue_type == "quorum":
        # replicated, durable queues; Celery then declares its delayed-delivery exchanges as
        # quorum queues too and drops the global QoS quorum queues refuse
        config["task_default_queue_type"] = "quorum"
        config["task_create_missing_queue_type"] = "quorum"
        config["broker_native_delayed_delivery_queue_type"] = "quorum"
        transport["confirm_publish"] = True  # a publish returns once RabbitMQ has the message
    extra = dict(conf.celery)
    transport.update(extra.pop("broker_transport_options", None) or {})
    config.update(extra)
    config["broker_transport_options"] = transport
    return config


def build_celery(settings: Settings, plugins: Plugins) -> FastplugCelery:
    """A Celery app configured from ``[tasks]`` with every plugin's ``register_tasks``."""
    conf = settings.section("tasks", TasksSettings)
    app = FastplugCelery("fastplug", set_as_current=False, task_cls=FastplugTask)
    app.fastplug = CeleryState(settings, plugins, conf, outbox_enabled(conf, settings.plugins))
    app.conf.update(celery_config(conf))
    plugins.call_each("register_tasks", celery_app=app, settings=settings)
    app.finalize(auto=True)
    return app
