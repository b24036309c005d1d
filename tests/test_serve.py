"""``manage.py serve`` as a real subprocess: ready, drains, runs shutdown, exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers_plugins import FakeDists, lifespan_body

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
pytestmark = pytest.mark.slow

SLOW_ROUTE = """
from fastapi import APIRouter

router = APIRouter()
in_flight = [0]


@router.get("/slow")
async def slow(seconds: float = 1.0) -> dict[str, float]:
    in_flight[0] += 1
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@router.get("/in-flight")
async def count() -> int:
    return in_flight[0]


@router.get("/pid")
async def pid() -> int:
    import os

    return os.getpid()


@hookimpl
def register_routers():
    return [router]
"""


def wait_ready(proc: subprocess.Popen[str], url: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"server exited early with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"server not ready on {url} within {limit}s")


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    fake = FakeDists(tmp_path / "dists", monkeypatch)
    fake.plugin("probe", lifespan_body("probe") + SLOW_ROUTE)
    yield fake
    fake.cleanup()


def serve_process(settings: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """``manage.py --settings SETTINGS serve --port <free> ARGS`` as a subprocess (no stray
    ``FASTPLUG_*``/``PROMETHEUS_*`` variables); returns it and its base URL."""
    port = free_port()
    clean = {k: v for k, v in env.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_"))}
    proc = subprocess.Popen(
        [sys.executable, str(MANAGE), "--settings", str(settings), "serve", "--port", str(port), *args],
        cwd=settings.parent,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def start(dists: FakeDists, tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    settings = tmp_path / "settings.toml"
    settings.write_text('[default]\nplugins = ["health", "probe"]\n')
    return serve_process(settings, dists.env(), *args)


def events_in(stderr: str) -> list[str]:
    """The lifespan events the fake plugins printed, in order."""
    return [line.removeprefix("event: ") for line in stderr.splitlines() if line.startswith("event: ")]


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"server did not stop on SIGTERM: {err}") from None
    return proc.returncode, err


def test_serve_is_live_and_sigterm_runs_shutdown_then_exits_0(dists: FakeDists, tmp_path: Path) -> None:
    proc, base = start(dists, tmp_path)
    try:
        wait_ready(proc, f"{base}/health/live")
        assert httpx.get(f"{base}/health/ready").json()["status"] == "ok"
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert events_in(err) == ["probe.start", "probe.stop"]
    assert err.index("Shutting down") < err.index("event: probe.stop")


@pytest.mark.parametrize("args", [(), ("--workers", "2")], ids=["uvicorn", "gunicorn"])
def test_sigterm_drains_in_flight_requests(dists: FakeDists, tmp_path: Path, args: tuple[str, ...]) -> None:
    """32 requests in flight when SIGTERM arrives: every one is answered, then exit 0."""
    proc, base = start(dists, tmp_path, *args)
    results: list[httpx.Response] = []

    def slow() -> None:
        results.append(httpx.get(f"{base}/slow?seconds=1.5", timeout=10))

    requests = [threading.Thread(target=slow) for _ in range(32)]
    try:
        wait_ready(proc, f"{base}/health/live")
        for request in requests:
            request.start()
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/in-flight").json() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the rest of the 32 reach the server too
    finally:
        code, err = stop(proc)
    for request in requests:
        request.join(timeout=10)
    assert code == 0, err
    assert len(results) == 32
    assert all(r.status_code == 200 and r.json() == {"slept": 1.5} for r in results)
    assert "event: probe.stop" in err


@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn needs a POSIX system")
def test_serve_with_two_workers_uses_gunicorn_and_stops_every_worker(dists: FakeDists, tmp_path: Path) -> None:
    proc, base = start(dists, tmp_path, "--workers", "2")
    try:
        wait_ready(proc, f"{base}/health/live")
        pids: set[int] = set()
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:  # new connections reach both workers
            pids.add(httpx.get(f"{base}/pid", headers={"connection": "close"}).json())
        assert len(pids) == 2
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "fastplug.core.worker.FastplugWorker" in err  # uvicorn-worker's, with fastplug's protocol
    assert err.count("event: probe.start") == 2
    assert err.count("event: probe.stop") == 2


def test_failed_start_rolls_back_and_exits_non_zero_with_one_line(dists: FakeDists, tmp_path: Path) -> None:
    dists.plugin("broken", lifespan_body("broken", 'raise ConnectionRefusedError("db down")'))
    settings = tmp_path / "settings.toml"
    settings.write_text('[default]\nplugins = ["health", "probe", "broken"]\n')
    env = {k: v for k, v in dists.env().items() if not k.startswith("FASTPLUG_")}
    run = subprocess.run(
        [sys.executable, str(MANAGE), "--settings", str(settings), "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0
    assert "plugin 'broken' failed to start: ConnectionRefusedError: db down" in run.stderr
    assert "Traceback" not in run.stderr
    assert events_in(run.stderr) == ["probe.start", "broken.start", "probe.stop"]


def test_failed_start_under_gunicorn_is_one_line_too(dists: FakeDists, tmp_path: Path) -> None:
    dists.plugin("broken", lifespan_body("broken", 'raise ConnectionRefusedError("db down")'))
    settings = tmp_path / "settings.toml"
    settings.write_text('[default]\nplugins = ["health", "broken"]\n')
    env = {k: v for k, v in dists.env().items() if not k.startswith("FASTPLUG_")}
    run = subprocess.run(
        [
            sys.executable,
            str(MANAGE),
            "--settings",
            str(settings),
            "serve",
            "--workers",
            "2",
            "--port",
            str(free_port()),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "plugin 'broken' failed to start: ConnectionRefusedError: db down" in run.stderr
    assert "Traceback" not in run.stderr


def test_shipped_settings_serve_every_plugin_with_no_server(tmp_path: Path) -> None:
    """The README's first command: the shipped settings.toml, embedded defaults, all ready."""
    shipped = MANAGE.parent / "settings.toml"
    (tmp_path / "settings.toml").write_text(shipped.read_text())
    proc, base = serve_process(tmp_path / "settings.toml", dict(os.environ))
    try:
        wait_ready(proc, f"{base}/health/live")
        ready = httpx.get(f"{base}/health/ready")
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert ready.status_code == 200, ready.text
    assert (tmp_path / "var" / "fastplug.db").exists()  # beside settings.toml, migrated at startup
