"""A fastplug project on private services: its settings, its server and its worker, run
the way a user runs them (``manage.py --settings ... serve`` / ``worker`` subprocesses)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import tomlkit

from chaos.instances import free_port

REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "manage.py"


def _merge(table: Any, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping):
            if key not in table:
                table[key] = tomlkit.table()
            _merge(table[key], value)
        else:
            table[key] = value


class Process:
    """A ``manage.py`` subprocess with its output in a file (read by ``output()``)."""

    def __init__(self, argv: list[str], cwd: Path, log: Path, env: Mapping[str, str]) -> None:
        self.log = log
        with open(log, "ab") as out:
            # its own process group: kill() takes its children (gunicorn's, Celery's) too
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, limit: float = 45.0) -> int:
        """SIGTERM, then wait (bounded; killed and failed if it does not stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.log.name} did not stop on SIGTERM:\n{self.output()[-3000:]}") from None

    def kill(self) -> None:
        """SIGKILL to the process and its children (a crash)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()


class ChaosApp:
    """The shipped settings.toml with ``overrides`` ([default] tables), in ``root``.

    ``serve()`` starts the server (``workers`` > 1: gunicorn), ``worker()`` a Celery worker;
    every process started is stopped by ``close()``.
    """

    def __init__(self, root: Path, overrides: Mapping[str, Any]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        document = tomlkit.parse((REPO / "settings.toml").read_text())
        _merge(document["default"], overrides)
        self.settings = root / "settings.toml"
        self.settings.write_text(tomlkit.dumps(document))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_"))}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.processes: list[Process] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._logs = 0

    def manage_argv(self, *args: str) -> list[str]:
        """The command line of ``manage.py --settings <this project> ARGS``."""
        return [sys.executable, str(MANAGE), "--settings", str(self.settings), *args]

    def _manage(self, name: str, *args: str) -> Process:
        self._logs += 1
        argv = self.manage_argv(*args)
        log = self.root / f"{self._logs:02d}-{name}.log"
        process = Process(argv, self.root, log, self.env)
        self.processes.append(process)
        return process

    def run(self, *args: str, limit: float = 180.0) -> str:
        """Run a ``manage.py`` command to its end; its output (fails on a non-zero exit)."""
        done = subprocess.run(
            [sys.executable, str(MANAGE), "--settings", str(self.settings), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=limit,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def serve(self, workers: int = 1, limit: float = 60.0) -> Process:
        """Start ``serve`` and wait until ``/health/live`` answers."""
        server = self._manage("serve", "serve", "--port", str(self.port), "--workers", str(workers))
        deadline = time.monotonic() + limit
        while True:
            if not server.alive():
                raise AssertionError(f"serve exited with {server.proc.returncode}:\n{server.output()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1.0).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve not live within {limit:g}s:\n{server.output()[-3000:]}")
            time.sleep(0.1)

    def worker(self, *args: str) -> Process:
        """Start ``manage.py worker``."""
        return self._manage("worker", "worker", *args)

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.alive():
                with contextlib.suppress(AssertionError):
                    process.terminate(limit=20)
