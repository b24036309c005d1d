"""Publishing off the event loop: kombu blocks, so every publish runs in a small thread pool
and the caller waits at most ``publish_timeout``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from fastplug.config import mask_url, mask_url_password
from fastplug.core import one_line
from fastplug.plugins.tasks.celery_app import OUTBOX_HEADER, FastplugCelery, without_result_listener
from fastplug.plugins.tasks.errors import BrokerUnavailable

T = TypeVar("T")
THREADS = 4


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """Stored outbox options -> ``send_task`` keywords (an ``eta`` is kept as ISO text)."""
    out = dict(options)
    if isinstance(out.get("eta"), str):
        out["eta"] = datetime.fromisoformat(out["eta"])
    return out


class Publisher:
    """Publishes through the Celery app's producer pool, from worker threads, with a timeout."""

    def __init__(self, app: FastplugCelery, timeout: float, threads: int = THREADS) -> None:
        self.app, self.timeout = app, timeout
        self.broker = mask_url(app.conf.broker_url)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="fastplug-tasks-publish")

    async def _call(self, fn: Callable[[], T], limit: float | None = None) -> T:
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn)
        limit = self.timeout if limit is None else limit
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            self.app.fastplug.metrics.incr("publish_errors")
            raise TimeoutError(f"publishing to {self.broker} took more than {limit:g}s") from None

    async def send(self, name: str, args: Sequence[Any], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        """Publish one task now (best-effort: lost if the process dies before the broker has
        it); returns its ``AsyncResult``. Raises :class:`BrokerUnavailable` or ``TimeoutError``."""

        def publish() -> Any:
            try:
                return self.app.send_task(name, list(args), kwargs, **_options(options))
            except Exception as exc:
                if _is_connection_error(exc):
                    raise BrokerUnavailable(f"broker {self.broker}: {mask_url_password(one_line(exc))}") from exc
                raise

        return await self._call(publish)

    async def publish_rows(self, rows: Sequence[Any]) -> tuple[list[str], str | None]:
        """Publish outbox rows (``id``, ``task``, ``payload``) in order until one fails or
        ``publish_timeout`` runs out: ``(published ids, error or None)``."""
        sent: list[str] = []

        def publish() -> str | None:
            deadline = time.monotonic() + self.timeout
            for row in rows:
                if time.monotonic() > deadline:
                    return f"publishing took more than {self.timeout:g}s"
                body = json.loads(row.payload)
                try:
                    with without_result_listener():
                        self.app.send_task(
                            row.task,
                            body["args"],
                            body["kwargs"],
                            task_id=row.id,
                            headers={OUTBOX_HEADER: True},
                            **_options(body["options"]),
                        )
                except Exception as exc:
                    return mask_url_password(one_line(exc))
                sent.append(row.id)
            return None

        try:
            error = await self._call(publish, self.timeout * 2)
        except TimeoutError as exc:  # still publishing in its thread: count nothing as sent
            return [], str(exc)
        return sent, error

    async def ping(self) -> str:
        """Connect to the broker (or raise), within the timeout; returns the masked URL."""

        def connect() -> None:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=self.timeout)

        await self._call(connect)
        return self.broker

    def close(self) -> None:
        """Stop the threads (a publish still running finishes on its own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _is_connection_error(exc: BaseException) -> bool:
    """The broker is unreachable or refuses us: kombu's ``OperationalError`` (a connection
    error of any transport, wrapped), a socket error, AMQP's connection errors, and
    ``AccessRefused`` (a wrong user or password: AMQP raises it as a channel error, which
    kombu does not wrap)."""
    from amqp.exceptions import AccessRefused
    from amqp.exceptions import ConnectionError as AmqpConnectionError
    from kombu.exceptions import OperationalError

    return isinstance(exc, OperationalError | OSError | AmqpConnectionError | AccessRefused)
