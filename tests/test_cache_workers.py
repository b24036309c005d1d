"""The memory cache under ``manage.py serve --workers 2``: an invalidation in one worker
reaches the other (generations in shared memory), a setup that cannot share refuses to
start, and ``manage.py check`` does not call several memory-cached workers "no issues"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fastplug.plugins.cache.shared import ENV
from tests.conftest import free_port
from tests.test_serve import wait_ready

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="gunicorn needs POSIX")]


def project(tmp_path: Path, workers: int = 1) -> Path:
    """A project with the products plugin on SQLite, cached in memory."""
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[default]\n"
        'plugins = ["health", "db", "cache", "products"]\n'
        "[default.server]\n"
        f"workers = {workers}\n"
        "[default.db]\n"
        f'url = "sqlite+aiosqlite:///{tmp_path / "app.db"}"\n'
        "[default.cache]\n"
        'backend = "memory"\n'
        "[default.products]\n"
        "cache_ttl = 600\n"
    )
    return settings


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_"))}
    return env | extra


def manage(settings: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), "--settings", str(settings), *args],
        cwd=settings.parent,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def fresh_get(url: str) -> httpx.Response:
    """A GET on a connection of its own (the kernel hands new connections to either worker)."""
    with httpx.Client(timeout=10) as client:
        return client.get(url, headers={"connection": "close"})


def test_an_invalidation_in_one_worker_reaches_the_other(tmp_path: Path) -> None:
    settings = project(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(MANAGE), "--settings", str(settings), "serve", "--workers", "2", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{base}/health/live", limit=30)
        body = {"sku": "W-1", "name": "Mug", "category": "kitchen", "price": "10.00", "stock": 5}
        created = httpx.post(f"{base}/products", json=body, timeout=10)
        assert created.status_code == 201, created.text
        detail = f"{base}/products/{created.json()['id']}"
        # each worker fills its own entry once: two MISSes mean both workers hold it
        misses, deadline = 0, time.monotonic() + 30
        while misses < 2 and time.monotonic() < deadline:
            answer = fresh_get(detail)
            assert answer.json()["price"] == "10.00"
            misses += answer.headers["x-cache"] == "MISS"
        assert misses == 2, "the requests did not reach both workers"
        for round_, price in enumerate(("11.00", "12.00", "13.00")):
            patched = httpx.patch(detail, json={"price": price}, timeout=10)  # in either worker
            assert patched.status_code == 200, patched.text
            answers = [fresh_get(detail) for _ in range(50 if round_ == 0 else 20)]
            assert [a.json()["price"] for a in answers] == [price] * len(answers)
            assert {a.headers["x-cache"] for a in answers} <= {"MISS", "HIT"}
            assert "HIT" in {a.headers["x-cache"] for a in answers}  # still cached between writes
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err


def test_serve_refuses_to_start_when_memory_cannot_be_shared(tmp_path: Path) -> None:
    settings = project(tmp_path)
    nowhere = tmp_path / "missing-dir" / "generations"
    run = manage(settings, "serve", "--workers", "2", "--port", str(free_port()), env=clean_env(**{ENV: str(nowhere)}))
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if "needs shared memory" in line]
    assert len(lines) == 1, run.stderr
    assert "backend = 'redis'" in lines[0] and "Traceback" not in run.stderr


def test_check_reports_memory_cached_workers(tmp_path: Path) -> None:
    one = manage(project(tmp_path, workers=1), "check")
    (tmp_path / "two").mkdir()
    two = manage(project(tmp_path / "two", workers=2), "check")
    assert "cache.W001" not in one.stdout + one.stderr
    assert two.returncode == 0, two.stderr
    assert "cache.W001" in two.stdout and "no issues" not in two.stdout
