"""``[tasks]`` settings (and the ``[tasks.celery]`` pass-through, checked against Celery's keys)."""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fastplug.config import PluginSettings

MEMORY_BROKER = "memory://"
REDIS_SCHEMES = ("redis", "rediss", "sentinel")

# Celery settings [tasks] sets itself: the pass-through table must not fight them.
OWN_KEYS = {
    "broker_url": "broker_url",
    "result_backend": "result_backend",
    "task_default_queue": "task_default_queue",
    "task_acks_late": "acks_late",
    "task_reject_on_worker_lost": "task_reject_on_worker_lost",
    "task_cls": "",
    "task_routes": "routes",
    "task_default_queue_type": "queue_type",
}


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ValueError("expected a URL such as amqp://user:password@host:5672// or redis://host:6379/0")
    return scheme


class TasksSettings(PluginSettings):
    """Celery from settings: broker, results, the embedded worker, publishing and the outbox."""

    broker_url: str = Field(
        MEMORY_BROKER,
        description="memory:// (in-process, with the embedded worker), amqp://..., redis://...",
    )
    result_backend: str | None = Field(
        None, description="where results go (redis://..., rpc://); default: in memory with memory://, else none"
    )
    embedded_worker: bool | None = Field(
        None, description="run a worker in the server process, off the event loop (default: with memory:// only)"
    )
    embedded_concurrency: int = Field(2, ge=1, le=64, description="threads of the embedded worker")
    task_default_queue: str = Field("fastplug", min_length=1)
    routes: dict[str, str] = Field(
        default_factory=dict,
        description='task name or glob -> queue, e.g. { "orders.*" = "orders" }; '
        "manage.py worker consumes every queue named here unless -Q says which",
    )
    queue_type: Literal["classic", "quorum"] = Field(
        "classic",
        description='RabbitMQ: "quorum" declares replicated, durable quorum queues (production); amqp:// only',
    )
    acks_late: bool = Field(True, description="acknowledge after the task ran: a killed worker's task is redelivered")
    task_reject_on_worker_lost: bool = True
    visibility_timeout: float = Field(
        300.0,
        gt=0,
        description="Redis/SQS: seconds before a task a worker took but never acknowledged (it died) is "
        "delivered again; keep it above your longest task and any delay()/retry countdown",
    )
    redis_restore_interval: float = Field(
        5.0, gt=0, description="Redis: seconds between a worker's sweeps for tasks past visibility_timeout"
    )
    publish_timeout: float = Field(5.0, gt=0, description="seconds a publish may take before the caller gives up")
    outbox: bool | None = Field(None, description="transactional outbox (default: on when the db plugin is enabled)")
    outbox_relay_interval: float = Field(1.0, gt=0, description="seconds between relay polls")
    outbox_batch_size: int = Field(100, ge=1, le=10_000)
    outbox_redelivery_timeout: float = Field(
        600.0,
        gt=0,
        description="seconds an outbox task may stay published but not started (the broker lost it?) "
        "before the relay publishes it again, with the same id",
    )
    outbox_retention: float = Field(
        7 * 86400.0, ge=0, description="seconds a done outbox row is kept (its idempotency key with it)"
    )
    celery: dict[str, Any] = Field(default_factory=dict, description="other Celery settings, by their lowercase name")

    @field_validator("broker_url")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        scheme = _scheme(value)
        if value == MEMORY_BROKER:
            return value
        from kombu.transport import TRANSPORT_ALIASES

        if scheme.split("+")[0] not in TRANSPORT_ALIASES:
            close = difflib.get_close_matches(scheme, list(TRANSPORT_ALIASES), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "e.g. amqp, redis, rediss, sqs, memory"
            raise ValueError(f"unknown broker transport '{scheme}' ({hint})")
        return value

    @field_validator("result_backend")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from celery.app.backends import BACKEND_ALIASES

        name = _scheme(value).split("+")[0]
        if name not in BACKEND_ALIASES:
            close = difflib.get_close_matches(name, list(BACKEND_ALIASES), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "e.g. redis, rpc, db+postgresql, cache+memory"
            raise ValueError(f"unknown result backend '{name}' ({hint})")
        return value

    @field_validator("routes")
    @classmethod
    def _routes(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern, queue in value.items():
            if not pattern.strip() or not queue.strip():
                raise ValueError(f'expected "task name or glob" = "queue name", got "{pattern}" = "{queue}"')
        return value

    @model_validator(mode="after")
    def _quorum_on_rabbitmq(self) -> TasksSettings:
        if self.queue_type == "quorum" and not self.is_amqp:
            raise ValueError('queue_type = "quorum" is RabbitMQ\'s: it needs an amqp:// broker_url')
        return self

    @field_validator("celery")
    @classmethod
    def _celery_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            return value
        from celery.app.defaults import DEFAULTS

        for key in value:
            if key in OWN_KEYS:
                own = OWN_KEYS[key]
                raise ValueError(f"'{key}' is set by [tasks] {own}" if own else f"'{key}' is fastplug's")
            if key not in DEFAULTS:
                close = difflib.get_close_matches(key.lower(), list(DEFAULTS), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "see Celery's configuration reference"
                raise ValueError(f"'{key}' is not a Celery setting; {hint}")
        return value

    @property
    def is_memory(self) -> bool:
        """True for the in-process broker (only the server's embedded worker sees it)."""
        return self.broker_url.startswith("memory://")

    @property
    def is_amqp(self) -> bool:
        """True for RabbitMQ brokers (amqp://, amqps://, pyamqp://)."""
        return self.broker_url.partition("://")[0] in ("amqp", "amqps", "pyamqp")

    @property
    def queues(self) -> list[str]:
        """The default queue and every queue ``routes`` names, each once."""
        return list(dict.fromkeys([self.task_default_queue, *self.routes.values()]))

    @property
    def is_redis(self) -> bool:
        """True for Redis brokers (redis://, rediss://, sentinel://): unacknowledged tasks come
        back only after ``visibility_timeout``, found by a worker's periodic sweep."""
        return self.broker_url.partition("://")[0].split("+")[0] in REDIS_SCHEMES

    @property
    def redelivery_bound(self) -> float:
        """Seconds after a worker crash (or its restart, with no other worker running) by which
        the broker delivers the tasks it had taken again: Redis ``visibility_timeout`` plus one
        sweep; SQS its visibility timeout; RabbitMQ at once (its connection closed); memory://
        has no broker of its own."""
        if self.is_redis:
            return self.visibility_timeout + self.redis_restore_interval
        return self.visibility_timeout if self.broker_url.startswith("sqs://") else 0.0

    @property
    def runs_embedded(self) -> bool:
        """Whether the server runs a worker in-process."""
        return self.is_memory if self.embedded_worker is None else self.embedded_worker


def outbox_enabled(conf: TasksSettings, plugins: list[str]) -> bool:
    """``[tasks] outbox``, by default on when the db plugin is enabled."""
    return ("db" in plugins) if conf.outbox is None else conf.outbox
