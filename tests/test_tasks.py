"""The tasks plugin: settings, the embedded default, the outbox, and real workers on the real
RabbitMQ and Redis (``manage.py worker``/``beat`` subprocesses)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import tasks_probe
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from fastplug.config.errors import FastplugError
from fastplug.core.cli import cli
from fastplug.core.runtime import Runtime
from fastplug.core.testing import require_service
from tests.conftest import free_port, wait_for
from tests.helpers_plugins import FakeDists

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
TESTS = Path(__file__).resolve().parent
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
Make = Callable[..., FastAPI]


def in_app(client: TestClient, coro: Callable[[], Any]) -> Any:
    """Run ``coro()`` on the app's event loop (its pools belong to that loop)."""
    return client.portal.call(coro)  # type: ignore[union-attr]


def services(app: FastAPI) -> Any:
    return Runtime.of(app).services


@pytest.fixture
def queue() -> str:
    """A queue of this test's own (the memory broker's queues are per process, RabbitMQ's shared)."""
    return f"fp-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    """The file the probe tasks append their side effects to."""
    return tmp_path / "effects.txt"


@pytest.fixture
def make(fastplug_app_factory: Make, queue: str) -> Make:
    """An app with the tasks and probe plugins (``plugins`` adds more, ``tasks`` overrides)."""

    def build(*more: str, tasks: dict[str, Any] | None = None, **sections: Any) -> FastAPI:
        conf = {"task_default_queue": queue, "outbox_relay_interval": 0.1, **(tasks or {})}
        names = ["health", *more, "tasks", "probe"]
        return fastplug_app_factory(plugins=names, tasks=conf, extra_plugins={"probe": tasks_probe}, **sections)

    return build


def record(client: TestClient, route: str, effects: Path, key: str) -> httpx.Response:
    return client.post(f"/probe/{route}", json={"path": str(effects), "key": key})


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


def write_settings(tmp_path: Path, plugins: list[str], tasks: dict[str, Any], **sections: dict[str, Any]) -> Path:
    """A settings.toml for subprocesses: ``sections`` by name; ``celery`` goes in [default.tasks.celery]."""
    out = ["[default]", f"plugins = {toml_value(plugins)}", "[default.tasks]"]
    out += [f"{k} = {toml_value(v)}" for k, v in tasks.items()]
    for name, values in sections.items():
        out.append(f"[default.{'tasks.celery' if name == 'celery' else name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path = tmp_path / "settings.toml"
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    """The probe plugin installed through an entry point (for subprocesses and ``load``)."""
    fake = FakeDists(tmp_path / "dists", monkeypatch)
    fake.add("fp-probe", "1.0", {"probe": "tasks_probe"})
    yield fake
    fake.cleanup()


def subprocess_env(dists: FakeDists) -> dict[str, str]:
    env = {k: v for k, v in dists.env().items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_MULTIPROC"))}
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(TESTS)])
    return env


# --- settings, imports, the Celery app ------------------------------------------------


def test_settings_errors_name_the_key_and_the_fix(fastplug_settings_file: Path) -> None:
    from fastplug.core.bootstrap import load

    fastplug_settings_file.write_text(
        '[default]\nplugins = ["tasks"]\n[default.tasks]\nbroker_url = "amqpx://guest:secret@localhost//"\n'
        'result_backend = "rediz://localhost/1"\npublish_timeout = 0\n'
        "[default.tasks.celery]\ntask_acks_lat = true\n"
    )
    with pytest.raises(FastplugError) as caught:
        load(fastplug_settings_file)
    lines = str(caught.value).splitlines()
    assert lines == [
        'settings.toml [default.tasks] broker_url: expected a string, got "amqpx://guest:********@localhost//" '
        "(unknown broker transport 'amqpx' (did you mean 'amqp'?))",
        'settings.toml [default.tasks] result_backend: expected a string (or omitted), got "rediz://localhost/1" '
        "(unknown result backend 'rediz' (did you mean 'redis'?))",
        "settings.toml [default.tasks] publish_timeout: expected a number > 0, got 0",
        'settings.toml [default.tasks.celery] celery: expected a table, got {"task_acks_lat": true} '
        "('task_acks_lat' is not a Celery setting; did you mean 'task_acks_late'?)",
    ]
    fastplug_settings_file.write_text(
        '[default]\nplugins = ["tasks"]\n[default.tasks.celery]\ntask_acks_late = false\n'
    )
    with pytest.raises(FastplugError, match=r"'task_acks_late' is set by \[tasks\] acks_late"):
        load(fastplug_settings_file)


def test_disabled_or_idle_plugin_imports_no_celery(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    code = (
        "import sys\n"
        "from fastplug.core.bootstrap import load\n"
        "from fastplug.core.app import build_app\n"
        "s, p = load(sys.argv[1])\n"
        "build_app(s, p)\n"
        "print(p.names, sorted(m for m in ('celery', 'kombu') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTPLUG_")}
    out = []
    for plugins in ('["health"]', '["health", "tasks"]'):
        settings.write_text(f"[default]\nplugins = {plugins}\n[default.tasks]\nbroker_url = 'memory://'\n")
        done = subprocess.run(
            [sys.executable, "-c", code, str(settings)], capture_output=True, text=True, env=env, cwd=TESTS.parent
        )
        assert done.returncode == 0, done.stderr
        out.append(done.stdout.strip())
    assert out == ["['health'] []", "['health', 'tasks'] []"]  # built, not started: celery comes with the lifespan


def test_importable_celery_app_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dists: FakeDists, queue: str
) -> None:
    from fastplug.plugins.tasks import worker

    settings = write_settings(
        tmp_path,
        ["health", "tasks", "probe"],
        {"broker_url": RABBIT, "task_default_queue": queue, "visibility_timeout": 600.0},
        celery={"task_time_limit": 30, "broker_transport_options": {"max_retries": 3}},
    )
    monkeypatch.setenv("FASTPLUG_SETTINGS", str(settings))
    monkeypatch.setattr(worker, "_app", None)
    app = worker.celery_app
    assert worker.app is app is worker.celery
    conf = app.conf
    assert (conf.broker_url, conf.task_default_queue, conf.task_acks_late) == (RABBIT, queue, True)
    assert conf.task_reject_on_worker_lost is True and conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit == 30
    assert conf.broker_transport_options == {"visibility_timeout": 600.0, "max_retries": 3}
    assert {"probe.add", "probe.record", "probe.slow"} <= set(app.tasks)
    assert app.tasks["probe.add"](2, 3) == 5  # a plain call runs the function


# --- the embedded default -------------------------------------------------------------


def test_embedded_default_runs_tasks_without_a_broker_server(make: Make, effects: Path) -> None:
    app = make()
    with TestClient(app, client=("127.0.0.1", 50000)) as client:  # loopback: shown the health details
        assert client.get("/probe/add", params={"x": 2, "y": 3}).json() == 5  # result visible
        created = record(client, "delay", effects, "k1")
        wait_for(lambda: tasks_probe.lines(effects), "the task to run")
        ready = client.get("/health/ready").json()
        celery = services(app)["tasks.celery"]
        no_db = celery.send_task("probe.db_record", ("nowhere", "x"))  # async task needing db: fails
        assert celery.send_task("probe.flaky", (str(effects), "k2")).get(timeout=10) == "k2"
        with pytest.raises(ValueError, match="planned failure"):
            celery.send_task("probe.fail").get(timeout=10)
        with pytest.raises(Exception, match=r"db\.engine"):
            no_db.get(timeout=10)
        metrics = services(app)["tasks.metrics"].as_dict()
    assert created.status_code == 201
    assert tasks_probe.lines(effects) == [f"k1 {os.getpid()}", f"k2 {os.getpid()}"]  # in this process
    check = ready["checks"]["tasks"]
    assert (check["status"], check["detail"]) == ("ok", {"broker": "memory://", "embedded_worker": "running"})
    assert metrics["sent"] >= 6 and metrics["succeeded"] == 3 and metrics["failed"] == 2 and metrics["retried"] == 1


def test_async_task_runs_on_the_servers_loop_with_its_services(make: Make, effects: Path, sqlite_url: str) -> None:
    app = make("db", db={"url": sqlite_url})
    with TestClient(app) as client:
        result = services(app)["tasks.celery"].send_task("probe.db_record", (str(effects), "a1"))
        assert result.get(timeout=10) == [os.getpid(), 0]
        assert client.get("/health/live").status_code == 200


# --- the outbox -------------------------------------------------------------------------


def outbox_rows(client: TestClient, app: FastAPI) -> list[tuple[str, str, int]]:
    from fastplug.plugins.tasks.models import OutboxMessage

    engine = services(app)["db.engine"]

    async def read() -> list[tuple[str, str, int]]:
        async with engine.connect() as conn:
            query = select(OutboxMessage.id, OutboxMessage.state, OutboxMessage.attempts)
            return [tuple(row) for row in (await conn.execute(query.order_by(OutboxMessage.created_at))).all()]

    return in_app(client, read)


def test_outbox_runs_committed_tasks_and_drops_rolled_back_ones(make: Make, effects: Path, db_url: str) -> None:
    app = make("db", db={"url": db_url, "auto_migrate": True})
    with TestClient(app) as client:
        created = record(client, "outbox", effects, "committed")
        failed = record(client, "outbox/then-fail", effects, "rolled-back")
        wait_for(lambda: outbox_rows(client, app)[0][1] == "done", "the outbox task to be done")
        rows = outbox_rows(client, app)
        backlog = in_app(client, services(app)["tasks"].backlog)
    assert created.status_code == 201 and failed.status_code == 409
    assert rows == [(created.json()["id"], "done", 0)]
    assert tasks_probe.lines(effects) == [f"committed {os.getpid()}"]
    assert backlog == 0


def test_a_duplicate_publish_runs_the_side_effect_once(make: Make, effects: Path, db_url: str) -> None:
    app = make("db", db={"url": db_url, "auto_migrate": True})
    with TestClient(app) as client:
        celery, metrics = services(app)["tasks.celery"], services(app)["tasks.metrics"]

        def publish_again(task_id: str, key: str) -> None:  # as a relay that crashed before marking it sent
            celery.send_task("probe.record", (str(effects), key), task_id=task_id, headers={"fastplug_outbox": True})

        first = record(client, "outbox", effects, "once").json()["id"]
        wait_for(lambda: outbox_rows(client, app)[0][1] == "done", "the first run")
        publish_again(first, "once")
        wait_for(lambda: metrics.duplicates == 1, "the late copy to be skipped")
        second = record(client, "outbox", effects, "racing").json()["id"]
        publish_again(second, "racing")  # copies that race the relay's own publish (a copy that
        publish_again(second, "racing")  # takes the row first leaves the relay nothing to publish)

        def settled() -> bool:  # the row is done, and every delivery so far ran, was skipped or retried
            handled = metrics.succeeded + metrics.duplicates + metrics.retried
            return outbox_rows(client, app)[1][1] == "done" and handled == metrics.sent

        wait_for(settled, "the racing copies to be skipped")
        rows, counts = outbox_rows(client, app), metrics.as_dict()
    assert tasks_probe.lines(effects) == [f"once {os.getpid()}", f"racing {os.getpid()}"]
    assert rows == [(first, "done", 0), (second, "done", 0)]
    assert counts["succeeded"] == 2 and counts["duplicates"] >= 2  # each key ran once, every other copy skipped


async def set_state(app: FastAPI, task_id: str, state: str) -> None:
    from fastplug.plugins.tasks.models import OutboxMessage

    async with services(app)["db.engine"].begin() as conn:
        await conn.execute(update(OutboxMessage).where(OutboxMessage.id == task_id).values(state=state))


def test_concurrent_relays_publish_each_row_once(make: Make, effects: Path, pg_url: str) -> None:
    from fastplug.plugins.tasks.models import OutboxMessage
    from fastplug.plugins.tasks.outbox import Relay, outbox_row

    app = make("db", db={"url": pg_url, "auto_migrate": True}, tasks={"outbox_batch_size": 7})
    with TestClient(app) as client:
        queue = services(app)["tasks"]
        others = [Relay(queue.relay.engine, queue.publisher, queue.relay.conf) for _ in range(2)]  # other processes'
        maker = services(app)["db.sessionmaker"]

        async def write_then_relay() -> None:
            async with maker() as session:
                rows = [outbox_row("probe.record", (str(effects), f"r{i}"), {}, {}) for i in range(60)]
                await session.execute(insert(OutboxMessage), rows)
                await session.commit()
            await asyncio.gather(*(relay.relay_once(poll=False) for relay in others))  # and this process's own

        in_app(client, write_then_relay)
        wait_for(lambda: len(tasks_probe.lines(effects)) == 60, "60 tasks")
        metrics = services(app)["tasks.metrics"].as_dict()
    assert metrics["sent"] == 60 and metrics["duplicates"] == 0
    assert sorted(line.split()[0] for line in tasks_probe.lines(effects)) == sorted(f"r{i}" for i in range(60))


def enqueue(client: TestClient, app: FastAPI, task: str, *args: Any, countdown: float | None = None) -> str:
    """Enqueue ``task(*args)`` through the outbox in a transaction of its own; the task id."""
    queue, maker = services(app)["tasks"], services(app)["db.sessionmaker"]

    async def write() -> str:
        async with maker() as session:
            task_id = await queue.enqueue_apply(session, task, args, countdown=countdown)
            await session.commit()
        return str(task_id)

    return in_app(client, write)


def outbox_row_now(client: TestClient, app: FastAPI, task_id: str) -> Any:
    from fastplug.plugins.tasks.models import OutboxMessage

    async def read() -> Any:
        async with services(app)["db.engine"].connect() as conn:
            return (await conn.execute(select(OutboxMessage).where(OutboxMessage.id == task_id))).one()

    return in_app(client, read)


def test_an_outbox_task_the_broker_lost_is_published_again_with_its_id(make: Make, effects: Path, db_url: str) -> None:
    from fastplug.plugins.tasks.models import OutboxMessage
    from fastplug.plugins.tasks.outbox import outbox_row
    from fastplug.plugins.tasks.runtime import utcnow

    app = make("db", db={"url": db_url, "auto_migrate": True}, tasks={"outbox_redelivery_timeout": 1.0})
    with TestClient(app) as client:
        # memory://: the relay first publishes again every row left ``sent`` (queued in a dead
        # process's memory), this test's two included if written before that: so wait for its
        # first poll (the backlog figure), which comes after
        wait_for(lambda: services(app)["tasks.metrics"].outbox_backlog is not None, "the relay's first poll")
        now = utcnow()
        lost = outbox_row("probe.record", (str(effects), "lost"), {}, {}) | {"state": "sent", "sent_at": now}
        lost["due_at"] = now  # published (the broker took it), then the broker lost it
        legacy = outbox_row("probe.record", (str(effects), "legacy"), {}, {}) | {"state": "sent"}
        legacy["sent_at"] = now - timedelta(seconds=5)  # sent by a relay that set no due_at: left alone
        # (older code also left failed tasks ``sent``: running them again would repeat them)

        async def write() -> None:
            async with services(app)["db.engine"].begin() as conn:
                await conn.execute(insert(OutboxMessage), [lost, legacy])

        in_app(client, write)
        wait_for(lambda: (lost["id"], "done", 1) in outbox_rows(client, app), "the lost row done")
        rows = outbox_rows(client, app)
        metrics = services(app)["tasks.metrics"].as_dict()
    assert sorted(rows) == sorted([(lost["id"], "done", 1), (legacy["id"], "sent", 0)])
    assert [line.split()[0] for line in tasks_probe.lines(effects)] == ["lost"]
    assert metrics["republished"] == 1 and metrics["duplicates"] == 0


def test_a_failed_outbox_task_is_final_and_a_retry_stays_in_flight(make: Make, effects: Path, db_url: str) -> None:
    app = make("db", db={"url": db_url, "auto_migrate": True}, tasks={"outbox_redelivery_timeout": 1.0})
    with TestClient(app) as client:
        broken = enqueue(client, app, "probe.broken", str(effects), "broken")
        retried = enqueue(client, app, "probe.retry_in", str(effects), "retried", 2.5)  # longer than the timeout
        wait_for(lambda: outbox_row_now(client, app, broken).state == "failed", "the failure")
        in_flight = wait_for(
            lambda: outbox_row_now(client, app, retried).last_error and outbox_row_now(client, app, retried),
            "the first try",
        )
        wait_for(lambda: outbox_row_now(client, app, retried).state == "done", "the retry")
        failed = outbox_row_now(client, app, broken)
        metrics = services(app)["tasks.metrics"].as_dict()
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 0, "ValueError: planned failure")
    assert in_flight.state == "sent" and in_flight.last_error.startswith("retrying: Retry in 2.5s")
    assert sorted(tasks_probe.lines(effects)) == sorted([f"broken {os.getpid()}", "first retried", "again retried"])
    assert metrics["republished"] == 0  # a failure is final; a retry is due at its countdown


def test_a_sqlite_claim_stays_fresh_while_its_task_runs_past_the_lease(
    make: Make, effects: Path, sqlite_url: str
) -> None:
    import threading
    import time

    from fastplug.plugins.tasks.runtime import OutboxGuard

    app = make("db", db={"url": sqlite_url, "auto_migrate": True}, tasks={"embedded_worker": False})
    with TestClient(app) as client:
        key = enqueue(client, app, "probe.record", str(effects), "long")
        engine = services(app)["db.engine"]

        raced_done = threading.Event()

        def long_task() -> str:
            time.sleep(0.9)  # three leases into the run...
            raced_done.wait(30)  # ...and still running until the race below has happened, however slow the machine
            return "ran"

        async def run_and_race() -> tuple[Any, str | None]:
            guard = OutboxGuard(engine, asyncio.get_running_loop(), lease=0.3)
            running = asyncio.create_task(asyncio.to_thread(guard.once, key, long_task))
            await asyncio.sleep(0.9)  # a redelivered copy tries to claim it while it runs
            try:
                raced = await guard._claim(key)
            finally:
                raced_done.set()
            return await running, raced

        (ran, result), raced = in_app(client, run_and_race)
        row = outbox_row_now(client, app, key)
    assert (ran, result, raced) == (True, "ran", "running")  # not taken over: the claim was renewed
    assert row.state == "done"


def test_a_countdown_beyond_the_relays_lead_waits_in_the_outbox(make: Make, effects: Path, db_url: str) -> None:
    app = make("db", db={"url": db_url, "auto_migrate": True})  # relay interval 0.1s: a lead of 1s
    with TestClient(app) as client:
        soon = enqueue(client, app, "probe.record", str(effects), "soon", countdown=0.5)
        later = enqueue(client, app, "probe.record", str(effects), "later", countdown=2.5)
        deferred = outbox_row_now(client, app, later).state
        wait_for(lambda: {state for _, state, _ in outbox_rows(client, app)} == {"done"}, "both rows done")
        rows = dict((task_id, attempts) for task_id, _, attempts in outbox_rows(client, app))
    assert deferred == "deferred" and rows == {soon: 0, later: 0}
    assert sorted(line.split()[0] for line in tasks_probe.lines(effects)) == ["later", "soon"]


def test_redis_settings_bound_redelivery_and_refuse_countdowns_past_it(make: Make, tmp_path: Path) -> None:
    from fastplug.plugins.tasks.celery_app import celery_config
    from fastplug.plugins.tasks.settings import TasksSettings

    conf = TasksSettings(broker_url="redis://127.0.0.1:6379/0")
    assert (conf.visibility_timeout, conf.redis_restore_interval, conf.redelivery_bound) == (300.0, 5.0, 305.0)
    assert conf.outbox_redelivery_timeout > conf.redelivery_bound
    options = celery_config(conf)["broker_transport_options"]
    assert options["visibility_timeout"] == 300.0 and options["unacked_restore_interval"] == 5.0
    assert options["unacked_restore_throttle"] == 1 and options["unacked_mutex_expire"] == 30
    assert TasksSettings(broker_url=RABBIT).redelivery_bound == 0.0
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = make(tasks={"broker_url": url, "embedded_worker": False, "visibility_timeout": 10.0})
    with TestClient(app) as client:
        queue = services(app)["tasks"]
        with pytest.raises(ValueError, match=r"countdown 10s is not below \[tasks\] visibility_timeout \(10s\)"):
            in_app(client, lambda: queue.apply_async("probe.add", (1, 2), countdown=10))
    settings = write_settings(
        tmp_path,
        ["db", "tasks"],
        {"broker_url": url, "outbox_redelivery_timeout": 60.0, "publish_timeout": 0.5},
        db={"url": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"},
    )
    _, out = invoke(settings, "check")
    assert "(tasks.W003) [tasks] outbox_redelivery_timeout (60s) is not above" in out and "= 305s" in out


# --- broker trouble, checks, commands ---------------------------------------------------


def dead_broker() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}//"


def test_broker_down_direct_publish_answers_503_and_readiness_names_tasks(make: Make, effects: Path) -> None:
    app = make(tasks={"broker_url": dead_broker(), "embedded_worker": False, "publish_timeout": 1.0})
    with TestClient(app, client=("127.0.0.1", 50000)) as client:  # loopback: shown the health details
        direct = record(client, "delay", effects, "lost")
        ready = client.get("/health/ready")
        live = client.get("/health/live")
        metrics = services(app)["tasks.metrics"].as_dict()
    assert direct.status_code == 503 and direct.headers["retry-after"] == "1"
    assert ready.status_code == 503 and ready.json()["failed"] == ["tasks"]
    assert "guest:guest" not in ready.text and "Connection refused" in ready.json()["checks"]["tasks"]["error"]
    assert live.status_code == 200
    assert metrics["publish_errors"] >= 1 and metrics["sent"] == 0


def invoke(settings: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--settings", str(settings), *args])
    return result.exit_code, result.output


def test_check_reports_a_bad_broker_url_clearly(tmp_path: Path) -> None:
    url = dead_broker()
    settings = write_settings(tmp_path, ["health", "tasks"], {"broker_url": url, "publish_timeout": 1.0})
    code, out = invoke(settings, "check")
    assert code == 1
    masked = url.replace("guest:guest", "guest:********")
    assert f"tasks: (tasks.E001) cannot connect to the broker {masked}: " in out
    assert "Connection refused" in out and "HINT: is [tasks] broker_url right and the broker running?" in out
    assert "guest:guest" not in out
    settings.write_text('[default]\nplugins = ["tasks"]\n[default.tasks]\nbroker_url = "rabbit://localhost//"\n')
    code, out = invoke(settings, "check")
    assert code == 1 and "broker_url" in out and "unknown broker transport 'rabbit'" in out


@pytest.mark.slow
def test_a_worker_beside_the_server_leaves_the_metrics_port_to_it(
    tmp_path: Path, dists: FakeDists, manage: Callable[..., Manage], rabbit_queue: str, effects: Path, sqlite_url: str
) -> None:
    """One host, one settings file with ``[metrics] port``: the server holds the port, and the
    worker's processes start their services (an async task needs them) without it."""
    import socket

    from fastplug.core.bootstrap import load
    from fastplug.plugins.tasks.celery_app import build_celery

    with socket.socket() as server_port:  # what the server's metrics port holds
        server_port.bind(("127.0.0.1", 0))
        server_port.listen()
        tasks = {"broker_url": RABBIT, "task_default_queue": rabbit_queue, "embedded_worker": False}
        settings = write_settings(
            tmp_path,
            ["health", "metrics", "db", "tasks", "probe"],
            tasks,
            db={"url": sqlite_url, "auto_migrate": True},
            metrics={"port": server_port.getsockname()[1]},
        )
        worker = start_worker(manage, settings, "--concurrency=2", "--pool=prefork")
        celery = build_celery(*load(settings))
        for key in ("w1", "w2", "w3", "w4"):
            celery.send_task("probe.db_record", (str(effects), key), queue=rabbit_queue)
        wait_for(lambda: len(tasks_probe.lines(effects)) == 4, "the async tasks, on the worker's services")
        assert worker.stop() == 0
    assert "failed to start" not in worker.output(), worker.output()[-3000:]


def test_rabbitmq_check_passes_and_the_embedded_worker_consumes_from_it(
    tmp_path: Path, make: Make, rabbit_queue: str, effects: Path
) -> None:
    code, out = invoke(write_settings(tmp_path, ["health", "tasks"], {"broker_url": RABBIT}), "check")
    assert code == 0 and "tasks.E" not in out, out
    app = make(tasks={"broker_url": RABBIT, "embedded_worker": True})
    with TestClient(app, client=("127.0.0.1", 50000)) as client:  # loopback: shown the health details
        assert record(client, "delay", effects, "r1").status_code == 201
        wait_for(lambda: tasks_probe.lines(effects), "the task")
        ready = client.get("/health/ready").json()["checks"]["tasks"]
    assert tasks_probe.lines(effects) == [f"r1 {os.getpid()}"]
    assert ready["detail"] == {"broker": RABBIT.replace("guest:guest", "guest:********"), "embedded_worker": "running"}


def test_routes_send_a_task_to_its_queue_and_a_worker_consumes_every_routed_queue(
    make: Make, rabbit_queue: str, effects: Path
) -> None:
    routed = f"{rabbit_queue}-routed"
    app = make(tasks={"broker_url": RABBIT, "embedded_worker": True, "routes": {"probe.rec*": routed}})
    try:
        with TestClient(app) as client:
            celery = services(app)["tasks.celery"]
            assert celery.amqp.router.route({}, "probe.record")["queue"].name == routed
            assert celery.amqp.router.route({}, "probe.add")["queue"].name == rabbit_queue
            assert record(client, "delay", effects, "routed").status_code == 201
            wait_for(lambda: tasks_probe.lines(effects), "the routed task")  # the embedded worker reads both
        from kombu import Connection

        with Connection(RABBIT, connect_timeout=5) as conn:  # it went through the routed queue, declared
            _, messages, _ = conn.default_channel.queue_declare(routed, passive=True)
        assert messages == 0
    finally:
        from kombu import Connection

        with Connection(RABBIT, connect_timeout=5) as conn:
            conn.default_channel.queue_delete(routed)
            conn.default_channel.exchange_delete(routed)


def test_quorum_queues_on_rabbitmq(make: Make, rabbit_vhost: str, queue: str, effects: Path) -> None:
    from amqp.exceptions import PreconditionFailed
    from kombu import Connection

    app = make(tasks={"broker_url": rabbit_vhost, "embedded_worker": True, "queue_type": "quorum"})
    with TestClient(app) as client:
        assert record(client, "delay", effects, "q1").status_code == 201
        wait_for(lambda: tasks_probe.lines(effects), "the task on a quorum queue")
    with Connection(rabbit_vhost, connect_timeout=5) as conn:
        channel = conn.channel()
        quorum, classic = {"x-queue-type": "quorum"}, {"x-queue-type": "classic"}
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments=quorum)  # the same queue
        with pytest.raises(PreconditionFailed, match="x-queue-type"):
            conn.channel().queue_declare(queue, durable=True, auto_delete=False, arguments=classic)


def test_quorum_queues_need_rabbitmq(fastplug_app_factory: Make) -> None:
    with pytest.raises(FastplugError, match="quorum"):
        tasks = {"broker_url": "redis://127.0.0.1:6379/0", "queue_type": "quorum"}
        fastplug_app_factory(plugins=["tasks"], tasks=tasks)


def test_worker_and_beat_say_why_they_cannot_run(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, ["health", "tasks"], {})
    code, out = invoke(settings, "worker")
    assert code == 1 and "[tasks] broker_url is memory://" in out and "amqp://" in out
    settings = write_settings(tmp_path, ["health", "tasks"], {"broker_url": RABBIT})
    code, out = invoke(settings, "beat")
    assert code == 1 and "no periodic tasks are registered" in out
    settings = write_settings(tmp_path, ["health"], {})
    code, out = invoke(settings, "worker")
    assert code == 2 and "No such command 'worker'" in out  # a disabled plugin adds no command


def test_metrics_plugin_exposes_task_figures(make: Make, effects: Path) -> None:
    pytest.importorskip("prometheus_client")
    token = "t" * 24
    app = make("metrics", metrics={"token": token})
    with TestClient(app) as client:
        record(client, "delay", effects, "m1")
        wait_for(lambda: tasks_probe.lines(effects), "the task")
        wait_for(lambda: services(app)["tasks.metrics"].succeeded, "the success to be counted")
        body = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert "tasks_sent_total 1.0" in body and "tasks_succeeded_total 1.0" in body
    assert "tasks_failed_total 0.0" in body and "tasks_retried_total 0.0" in body


# --- real workers: manage.py worker / beat subprocesses ---------------------------------


class Manage:
    """``manage.py <args>`` in its own process group, its output in a log file."""

    def __init__(self, settings: Path, dists: FakeDists, log: Path, *args: str) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(MANAGE), "--settings", str(settings), *args],
                cwd=settings.parent,
                env=subprocess_env(dists),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_output(self, needle: str, limit: float = 60.0) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and needle not in self.output():
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            return needle in self.output()

        wait_for(seen, f"{needle!r} in the output of {self.proc.args[4:]}", limit)

    def kill(self) -> None:
        """SIGKILL the whole group (the worker and its pool processes), as a crash would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        """SIGTERM (warm shutdown), SIGKILL if it lingers; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"did not stop on SIGTERM:\n{self.output()[-3000:]}") from None
        return self.proc.returncode


@pytest.fixture
def manage(tmp_path: Path, dists: FakeDists) -> Iterator[Callable[..., Manage]]:
    """``start(settings, *args)``: a manage.py subprocess, killed at the end of the test."""
    started: list[Manage] = []

    def start(settings: Path, *args: str) -> Manage:
        proc = Manage(settings, dists, tmp_path / f"manage-{len(started)}.log", *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def start_worker(manage: Callable[..., Manage], settings: Path, *args: str) -> Manage:
    name = f"w{uuid.uuid4().hex[:8]}"
    worker = manage(settings, "worker", "--loglevel=info", f"--hostname={name}@%h", *args)
    worker.wait_output(f"{name}@")
    worker.wait_output(" ready.")
    return worker


@pytest.fixture
def rabbit_queue(queue: str) -> Iterator[str]:
    """This test's queue on the real RabbitMQ, deleted afterwards."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    yield queue
    from kombu import Connection

    with Connection(RABBIT, connect_timeout=5) as conn:
        conn.default_channel.queue_delete(queue)
        conn.default_channel.exchange_delete(queue)  # Celery declares one named after the queue


@pytest.fixture
def rabbit_vhost(queue: str) -> Iterator[str]:
    """A broker URL on a vhost of this test's own on the real RabbitMQ, deleted afterwards
    with everything in it (Celery declares shared objects there: delayed-delivery queues)."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.skip("rabbitmqctl is not installed: no private vhost")
    subprocess.run([ctl, "-q", "add_vhost", queue], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(
            [ctl, "-q", "set_permissions", "-p", queue, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"amqp://guest:guest@127.0.0.1:5672/{queue}"
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", queue], capture_output=True, timeout=60)


def loaded_app(settings: Path) -> FastAPI:
    """The same app a server would build from ``settings`` (probe through its entry point)."""
    from fastplug.core.app import build_app
    from fastplug.core.bootstrap import load

    return build_app(*load(settings))


@pytest.mark.slow
def test_rabbitmq_worker_runs_plugin_tasks_outbox_and_beat(
    tmp_path: Path,
    dists: FakeDists,
    manage: Callable[..., Manage],
    rabbit_queue: str,
    pg_url: str,
    effects: Path,
    private_redis: Callable[[], subprocess.Popen[bytes]],
) -> None:
    private_redis()
    results = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    tasks = {"broker_url": RABBIT, "result_backend": results, "task_default_queue": rabbit_queue}
    tasks |= {"embedded_worker": False, "outbox_relay_interval": 0.2}
    settings = write_settings(
        tmp_path,
        ["health", "db", "tasks", "probe"],
        tasks,
        db={"url": pg_url, "auto_migrate": True},
        probe={"beat_file": str(effects), "beat_every": 0.3},
        celery={"beat_schedule_filename": str(tmp_path / "beat-schedule"), "worker_enable_remote_control": False},
    )
    worker = start_worker(manage, settings, "--concurrency=2", "--pool=prefork")
    app = loaded_app(settings)
    with TestClient(app) as client:
        added = client.get("/probe/add", params={"x": 2, "y": 3})  # a result from the worker
        keys = [f"o{i}" for i in range(6)]
        for key in keys:
            assert record(client, "outbox", effects, key).status_code == 201
        wait_for(lambda: len(tasks_probe.lines(effects)) == len(keys), "the outbox tasks")
        celery = services(app)["tasks.celery"]
        from_children = [celery.send_task("probe.db_record", (str(tmp_path / "db.txt"), "d")) for _ in range(4)]
        children = [tuple(result.get(timeout=30)) for result in from_children]
        states = {state for _, state, _ in outbox_rows(client, app)}
    beat = manage(settings, "beat", "--loglevel=info")
    wait_for(lambda: "tick" in {line.split()[0] for line in tasks_probe.lines(effects)}, "a periodic task")
    assert beat.stop() == 0
    assert worker.stop() == 0, worker.output()[-3000:]
    assert added.json() == 5
    ran = {line.split()[0]: int(line.split()[1]) for line in tasks_probe.lines(effects) if line.startswith("o")}
    assert sorted(ran) == keys and states == {"done"}
    assert os.getpid() not in ran.values() and worker.proc.pid not in ran.values()  # prefork children ran them
    assert all(pid != worker.proc.pid and backend > 0 for pid, backend in children)  # each on its own engine
    assert "Traceback" not in worker.output()


@pytest.mark.slow
def test_outbox_delivers_everything_once_after_a_redis_broker_outage(
    tmp_path: Path,
    dists: FakeDists,
    manage: Callable[..., Manage],
    private_redis: Callable[[], subprocess.Popen[bytes]],
    pg_url: str,
    effects: Path,
    queue: str,
) -> None:
    broker = private_redis()
    port = private_redis.port  # type: ignore[attr-defined]
    tasks = {"broker_url": f"redis://127.0.0.1:{port}/0", "result_backend": f"redis://127.0.0.1:{port}/1"}
    tasks |= {"task_default_queue": queue, "embedded_worker": False, "outbox_relay_interval": 0.1}
    tasks |= {"publish_timeout": 1.0}
    settings = write_settings(
        tmp_path, ["health", "db", "tasks", "probe"], tasks, db={"url": pg_url, "auto_migrate": True}
    )
    app = loaded_app(settings)
    keys = [f"k{i:02d}" for i in range(20)]
    with TestClient(app) as client:
        assert client.get("/health/ready").status_code == 200
        broker.kill()
        broker.wait()
        answers = [record(client, "outbox", effects, key) for key in keys]  # a hang would fail here
        wait_for(lambda: any(attempts for _, _, attempts in outbox_rows(client, app)), "a failed publish")
        during = outbox_rows(client, app)
        ready_during = client.get("/health/ready").json()["checks"]["tasks"]["status"]
        private_redis()
        worker = start_worker(manage, settings, "--concurrency=2")
        wait_for(lambda: len(tasks_probe.lines(effects)) >= len(keys), "every task", limit=60)
        wait_for(lambda: {state for _, state, _ in outbox_rows(client, app)} == {"done"}, "every row done")
        results = [services(app)["tasks"].celery.AsyncResult(task_id).get(timeout=10) for task_id, _, _ in during]
    assert worker.stop() == 0, worker.output()[-3000:]
    assert [a.status_code for a in answers] == [201] * len(keys)
    assert {state for _, state, _ in during} == {"pending"}
    assert ready_during != "ok"  # the broker is down (the outbox keeps the tasks meanwhile)
    ran = sorted(line.split()[0] for line in tasks_probe.lines(effects))
    assert ran == keys  # every task, exactly once
    assert sorted(results) == keys  # and its result is visible


@pytest.mark.slow
def test_a_worker_killed_mid_task_gets_it_redelivered(
    tmp_path: Path, dists: FakeDists, manage: Callable[..., Manage], rabbit_queue: str, effects: Path
) -> None:
    from fastplug.core.bootstrap import load
    from fastplug.plugins.tasks.celery_app import build_celery

    tasks = {"broker_url": RABBIT, "task_default_queue": rabbit_queue}
    settings = write_settings(tmp_path, ["health", "tasks", "probe"], tasks)
    celery = build_celery(*load(settings))

    def started(key: str) -> int:
        line = wait_for(lambda: [x for x in tasks_probe.lines(effects) if x.startswith(f"start {key} ")], key)
        return int(line[0].split()[2])

    first = start_worker(manage, settings, "--concurrency=1")
    celery.send_task("probe.slow", (str(effects), "child", 120))
    child = started("child")
    os.kill(child, signal.SIGKILL)  # the pool process dies: task_reject_on_worker_lost requeues it
    wait_for(lambda: any(x.startswith("done child ") for x in tasks_probe.lines(effects)), "the child's task again")
    celery.send_task("probe.slow", (str(effects), "worker", 120))
    doomed = started("worker")
    first.kill()  # the whole worker dies: unacknowledged (acks_late), the broker delivers it again
    second = start_worker(manage, settings, "--concurrency=1")
    wait_for(lambda: any(x.startswith("done worker ") for x in tasks_probe.lines(effects)), "the worker's task again")
    assert second.stop() == 0
    celery.close()
    steps = [line.split()[:2] for line in tasks_probe.lines(effects)]
    assert steps == [[step, key] for key in ("child", "worker") for step in ("start", "again", "done")]
    pids = {tuple(line.split()[:2]): int(line.split()[2]) for line in tasks_probe.lines(effects)}
    assert pids[("again", "child")] != child and pids[("again", "worker")] != doomed
