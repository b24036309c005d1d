"""pytest plugin for fastplug apps and plugin authors (registered as ``pytest11``).

Fixtures:

* ``fastplug_settings_file`` - a temporary ``settings.toml`` you can write to;
* ``fastplug_overrides`` - a dict layered on top of the settings (edit it in a test);
* ``fastplug_load`` - ``(settings, plugins)`` from an isolated plugin manager;
* ``fastplug_app_factory`` - ``make(plugins=[...], **sections) -> FastAPI``;
* ``fastplug_client`` - a ``TestClient`` whose ``with`` block runs the lifespan.

Helpers: :func:`require_service` skips a test when a service is down (and fails it under
``CI=true``); :class:`LiveServer` serves an app with uvicorn in a thread, for real concurrency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from fastplug.config.settings import Settings
from fastplug.core.manager import Plugins

MINIMAL_SETTINGS = '[default]\nplugins = ["health"]\n'


@pytest.fixture
def fastplug_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A minimal settings.toml in a temp dir, with FASTPLUG_* variables cleared."""
    import os

    for name in list(os.environ):
        if name.startswith("FASTPLUG_"):
            monkeypatch.delenv(name)
    path = tmp_path / "settings.toml"
    path.write_text(MINIMAL_SETTINGS)
    return path


@pytest.fixture
def fastplug_overrides() -> dict[str, Any]:
    """Settings layered on top of the file; mutate it before using the other fixtures."""
    return {}


@pytest.fixture
def fastplug_load(
    fastplug_settings_file: Path, fastplug_overrides: dict[str, Any]
) -> Callable[..., tuple[Settings, Plugins]]:
    """``load(**overrides)``: settings and plugins from a fresh plugin manager."""
    from fastplug.config.sources import deep_merge
    from fastplug.core.bootstrap import load

    def _load(
        env: str | None = None, extra_plugins: Mapping[str, Any] | None = None, **overrides: Any
    ) -> tuple[Settings, Plugins]:
        return load(fastplug_settings_file, env, deep_merge(fastplug_overrides, overrides), extra_plugins)

    return _load


@pytest.fixture
def fastplug_app_factory(fastplug_load: Callable[..., tuple[Settings, Plugins]]) -> Callable[..., FastAPI]:
    """``make(plugins=["health", "mine"], mine={"key": 1}, extra_plugins={"mine": obj})``."""
    from fastplug.core.app import build_app

    def make(extra_plugins: Mapping[str, Any] | None = None, **overrides: Any) -> FastAPI:
        return build_app(*fastplug_load(extra_plugins=extra_plugins, **overrides))

    return make


@pytest.fixture
def fastplug_client(fastplug_app_factory: Callable[..., FastAPI]) -> Iterator[Any]:
    """A started ``TestClient`` for the app the settings describe (lifespan run)."""
    from fastapi.testclient import TestClient

    with TestClient(fastplug_app_factory()) as client:
        yield client


def service_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _missing(reason: str) -> None:
    import os

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: what the tests need must be installed and running)", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """The path of command ``name``; skip when it is missing (fail under ``CI=true``)."""
    import shutil

    path = shutil.which(name)
    if path is None:
        _missing(f"{name} is not installed")
    assert path is not None
    return path


def require_service(name: str, host: str, port: int) -> None:
    """Skip the test when service ``name`` is not reachable, except under ``CI=true``,
    where a missing service is a failure, never a silent skip."""
    if not service_reachable(host, port):
        _missing(f"{name} is not reachable on {host}:{port}")


class LiveServer:
    """Serve ``app`` with uvicorn in a background thread (real sockets, real concurrency,
    lifespan included): ``with LiveServer(app) as server: httpx.get(server.url + "/x")``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1") -> None:
        import socket

        import uvicorn

        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="on", log_level="warning", access_log=False, server_header=False
        )
        self.server = uvicorn.Server(config)
        self._thread: Any = None

    def __enter__(self) -> LiveServer:
        import threading
        import time

        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start (see the log above)")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
