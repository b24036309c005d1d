"""Redelivery, measured for real: a ``manage.py worker`` SIGKILLed with tasks in flight on a
private Redis broker and on a private RabbitMQ node, tasks running past Redis's visibility
timeout, eta tasks on Redis, and outbox tasks a broker restarted empty lost.

Every test checks exactly-once effects (``done <key>`` lines of ``probe.gated``) within a
generous bound that follows from the settings (3x the documented one, plus startup slack);
the measured times are printed (``pytest -s``)."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tasks_probe
from fastapi.testclient import TestClient

from chaos.instances import PrivateRabbit
from tests.conftest import wait_for
from tests.helpers_plugins import FakeDists
from tests.test_tasks import Manage, enqueue, loaded_app, outbox_row_now, outbox_rows, start_worker, write_settings

pytestmark = pytest.mark.slow
START_SLACK = 60.0  # seconds a worker (or a broker) may take to start on a loaded machine
PLUGINS = ["health", "tasks", "probe"]


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    fake = FakeDists(tmp_path / "dists", monkeypatch)
    fake.add("fp-probe", "1.0", {"probe": "tasks_probe"})
    yield fake
    fake.cleanup()


@pytest.fixture
def manage(tmp_path: Path, dists: FakeDists) -> Iterator[Callable[..., Manage]]:
    started: list[Manage] = []

    def start(settings: Path, *args: str) -> Manage:
        proc = Manage(settings, dists, tmp_path / f"manage-{len(started)}.log", *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.txt"


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """While this file is missing, ``probe.gated`` tasks wait before their side effect."""
    path = tmp_path / "gate"
    path.touch()
    return path


@pytest.fixture
def private_rabbit(chaos_rabbit: PrivateRabbit) -> str:
    """A RabbitMQ node of this test's own (the chaos suite's): its amqp:// URL."""
    return chaos_rabbit.url


def runs(effects: Path) -> tuple[Counter[str], Counter[str], dict[str, float]]:
    """Starts and side effects per key, and when each side effect happened (wall clock)."""
    started: Counter[str] = Counter()
    done: Counter[str] = Counter()
    when: dict[str, float] = {}
    for line in tasks_probe.lines(effects):
        step, key, _, stamp = line.split()
        (started if step == "start" else done)[key] += 1
        if step == "done":
            when[key] = float(stamp)
    return started, done, when


def settled_in_flight(effects: Path, count: int) -> set[str]:
    """Wait until exactly ``count`` tasks are started but held at the gate, and stay so."""

    def stable() -> set[str] | None:
        started, done, _ = runs(effects)
        first = set(started) - set(done)
        if len(first) != count:
            return None
        time.sleep(0.5)
        started, done, _ = runs(effects)
        return first if set(started) - set(done) == first else None

    return wait_for(stable, f"{count} tasks held at the gate", limit=60)


def kill_mid_burst(
    manage: Callable[..., Manage], settings: Path, effects: Path, gate: Path, bound: float, keys: list[str]
) -> tuple[set[str], float]:
    """Run ``keys`` on a worker, SIGKILL it with 2 tasks in flight, restart it: every task
    runs exactly once within 3x ``bound`` (+ startup); the in-flight tasks and the seconds
    from the restart to the last side effect."""
    from fastplug.core.bootstrap import load
    from fastplug.plugins.tasks.celery_app import build_celery

    celery = build_celery(*load(settings))
    first = start_worker(manage, settings, "--concurrency=2")
    try:
        for key in keys:
            celery.send_task("probe.gated", (str(effects), key, str(gate), 0.05))
        wait_for(lambda: len(runs(effects)[1]) >= len(keys) // 3, "a third of the burst")
        gate.unlink()  # the next two tasks stop before their side effect
        in_flight = settled_in_flight(effects, 2)
        first.kill()  # the worker and its pool, as a crash: nothing acknowledged or restored
        gate.touch()
        restarted = time.time()
        start_worker(manage, settings, "--concurrency=2")
        limit = 3 * bound + START_SLACK
        wait_for(lambda: set(runs(effects)[1]) == set(keys), "every task of the burst", limit=limit)
    finally:
        celery.close()
    started, done, when = runs(effects)
    assert done == Counter(keys), f"not exactly once: {done - Counter(keys)}"
    assert all(started[key] == 2 for key in in_flight)  # killed mid-task, run again
    return in_flight, max(when.values()) - restarted


def test_redis_worker_killed_mid_burst_redelivers_after_the_visibility_timeout(
    tmp_path: Path,
    manage: Callable[..., Manage],
    private_redis: Callable[[], subprocess.Popen[bytes]],
    effects: Path,
    gate: Path,
) -> None:
    private_redis()
    port = private_redis.port  # type: ignore[attr-defined]
    tasks = {"broker_url": f"redis://127.0.0.1:{port}/0", "task_default_queue": "burst"}
    tasks |= {"visibility_timeout": 6.0, "redis_restore_interval": 1.0}  # bound: 7s
    settings = write_settings(tmp_path, PLUGINS, tasks)
    keys = [f"r{i:03d}" for i in range(60)]
    in_flight, elapsed = kill_mid_burst(manage, settings, effects, gate, 7.0, keys)
    print(f"\nredis: {len(keys)} tasks once each; the {len(in_flight)} in flight {elapsed:.1f}s after the restart")


def test_rabbitmq_worker_killed_mid_burst_redelivers_at_once(
    tmp_path: Path, manage: Callable[..., Manage], private_rabbit: str, effects: Path, gate: Path
) -> None:
    settings = write_settings(tmp_path, PLUGINS, {"broker_url": private_rabbit, "task_default_queue": "burst"})
    keys = [f"a{i:03d}" for i in range(60)]
    in_flight, elapsed = kill_mid_burst(manage, settings, effects, gate, 0.0, keys)
    print(f"\nrabbitmq: {len(keys)} tasks once each; the {len(in_flight)} in flight {elapsed:.1f}s after the restart")


def redis_outbox_settings(tmp_path: Path, port: int, pg_url: str, **tasks: Any) -> Path:
    conf = {"broker_url": f"redis://127.0.0.1:{port}/0", "task_default_queue": "outbox", "embedded_worker": False}
    conf |= {"outbox_relay_interval": 0.2, "publish_timeout": 1.0, **tasks}
    return write_settings(tmp_path, ["health", "db", *PLUGINS[1:]], conf, db={"url": pg_url, "auto_migrate": True})


def test_redis_long_and_eta_outbox_tasks_run_once(
    tmp_path: Path,
    manage: Callable[..., Manage],
    private_redis: Callable[[], subprocess.Popen[bytes]],
    pg_url: str,
    effects: Path,
    gate: Path,
) -> None:
    private_redis()
    port = private_redis.port  # type: ignore[attr-defined]
    settings = redis_outbox_settings(tmp_path, port, pg_url, visibility_timeout=3.0, redis_restore_interval=1.0)
    worker = start_worker(manage, settings, "--concurrency=2")
    app = loaded_app(settings)
    with TestClient(app) as client:
        long = enqueue(client, app, "probe.gated", str(effects), "long", str(gate), 8.0)  # past the 3s timeout
        eta = enqueue(client, app, "probe.gated", str(effects), "eta", str(gate), 0.0, countdown=8.0)
        deferred = outbox_row_now(client, app, eta).state
        wait_for(lambda: len(runs(effects)[1]) == 2, "both tasks", limit=3 * 9 + START_SLACK)
        wait_for(lambda: "ignored" in worker.output(), "the long task's redelivered copy to be skipped", limit=30)
        time.sleep(3 * 4.0)  # three more sweeps: nothing else arrives
        rows = {task_id: (state, attempts) for task_id, state, attempts in outbox_rows(client, app)}
    assert worker.stop() == 0
    started, done, _ = runs(effects)
    assert deferred == "deferred"  # in the outbox, not in Redis, until shortly before its eta
    assert started == done == Counter(["long", "eta"])
    assert rows == {long: ("done", 0), eta: ("done", 0)}
    assert f"[{long}] ignored" in worker.output()  # the long task's copy (or copies), skipped
    assert f"[{eta}] ignored" not in worker.output()  # the eta task never came back


def test_outbox_republishes_what_a_redis_broker_restarted_empty_lost(
    tmp_path: Path,
    manage: Callable[..., Manage],
    private_redis: Callable[[], subprocess.Popen[bytes]],
    pg_url: str,
    effects: Path,
    gate: Path,
) -> None:
    broker = private_redis()
    port = private_redis.port  # type: ignore[attr-defined]
    timeout = 8.0  # outbox_redelivery_timeout, above the broker's own 3 + 1 s
    tasks = {"visibility_timeout": 3.0, "redis_restore_interval": 1.0, "outbox_redelivery_timeout": timeout}
    settings = redis_outbox_settings(tmp_path, port, pg_url, **tasks)
    app = loaded_app(settings)
    lost = [f"l{i:02d}" for i in range(25)]
    with TestClient(app) as client:
        for key in lost:  # no worker: the tasks wait in Redis
            enqueue(client, app, "probe.gated", str(effects), key, str(gate))
        wait_for(lambda: {state for _, state, _ in outbox_rows(client, app)} == {"sent"}, "every row sent")
        broker.kill()
        broker.wait()
        private_redis()  # empty: every task it held is lost
        restarted = time.time()
        worker = start_worker(manage, settings, "--concurrency=2")
        limit = 3 * (timeout + 0.2) + START_SLACK
        wait_for(lambda: set(runs(effects)[1]) == set(lost), "every lost task", limit=limit)
        lost_elapsed = max(runs(effects)[2].values()) - restarted
        wait_for(lambda: {state for _, state, _ in outbox_rows(client, app)} == {"done"}, "every row done")
        republished = {task_id: attempts for task_id, _, attempts in outbox_rows(client, app)}

        # queued behind others: 12 x 0.5s on 2 processes (3s) stays below the timeout; 40 more
        # (10s) do not: the tail is published again while queued, and the copies are skipped
        within, beyond = [f"q{i:02d}" for i in range(12)], [f"b{i:02d}" for i in range(40)]
        for key in within:
            enqueue(client, app, "probe.gated", str(effects), key, str(gate), 0.5)
        wait_for(lambda: set(within) <= set(runs(effects)[1]), "the short queue", limit=3 * timeout + 30)
        for key in beyond:
            enqueue(client, app, "probe.gated", str(effects), key, str(gate), 0.5)
        wait_for(lambda: set(beyond) <= set(runs(effects)[1]), "the long queue", limit=3 * 20 + 30)
        wait_for(lambda: {state for _, state, _ in outbox_rows(client, app)} == {"done"}, "every row done")
        rows = [outbox_row_now(client, app, task_id) for task_id, _, _ in outbox_rows(client, app)]
    assert worker.stop() == 0, worker.output()[-3000:]
    _, done, _ = runs(effects)
    assert done == Counter(lost + within + beyond), "every task's side effect exactly once"
    assert all(attempts >= 1 for attempts in republished.values())  # again (twice if the worker was slow)
    quick = [row for row in rows if (row.done_at - row.created_at).total_seconds() < timeout]
    assert quick and all(row.attempts == 0 for row in quick)  # done within the timeout: never published again
    again = sum(1 for row in rows if row.attempts and row.id not in republished)
    print(f"\nlost: {len(lost)} tasks once each, the last {lost_elapsed:.1f}s after the broker restarted empty;")
    print(f"queued: {len(within) + len(beyond)} tasks once each, {again} published again while queued (skipped)")


def test_the_fallback_sweep_restores_what_a_dead_consumer_took(
    private_redis: Callable[[], subprocess.Popen[bytes]],
) -> None:
    """Older kombu (no restore interval option): the worker's own sweep brings tasks back."""
    import kombu
    from kombu import Connection

    from fastplug.plugins.tasks.celery_app import FastplugCelery
    from fastplug.plugins.tasks.redelivery import kombu_sweeps, sweep_once

    private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    options = {"visibility_timeout": 1.0}
    with Connection(url, transport_options=options) as conn:
        queue = conn.SimpleQueue("sweep")
        queue.put({"n": 1})
        assert queue.get(timeout=5).payload == {"n": 1}  # taken, never acknowledged: a dead consumer
        queue.close()
    app = FastplugCelery("sweep", set_as_current=False)
    app.conf.broker_url, app.conf.broker_transport_options = url, options
    time.sleep(1.5)
    sweep_once(app)
    with Connection(url, transport_options=options) as conn:
        queue = conn.SimpleQueue("sweep")
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    app.close()
    assert message.payload == {"n": 1} and message.delivery_info.get("redelivered") in (True, None)
    assert kombu_sweeps() is (tuple(int(part) for part in kombu.__version__.split(".")[:2]) >= (5, 7))
