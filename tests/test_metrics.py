"""The metrics plugin: bounded labels, 500s, access to /metrics, other plugins' collectors,
the db plugin's figures, promtool, and sums across ``serve --workers 2``."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import db_notes
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from fastplug.config.errors import FastplugError
from fastplug.core import PluginInfo, hookimpl
from fastplug.core.runtime import Runtime
from fastplug.core.testing import require_tool
from tests.helpers_plugins import FakeDists
from tests.test_serve import serve_process, stop, wait_ready

Make = Callable[..., FastAPI]
LOOPBACK = ("127.0.0.1", 50000)
STRANGER = ("10.9.8.7", 50000)
TOKEN = "s3cret-token-for-scrapers"
RELEASE: dict[str, asyncio.Event] = {}  # the event /wait waits for, made in the test's loop

router = APIRouter()


@router.get("/users/{user_id}")
async def user(user_id: int) -> dict[str, int]:
    return {"id": user_id}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


@router.get("/wait")
async def wait() -> str:
    await asyncio.wait_for(RELEASE["event"].wait(), 10)
    return "done"


class Routes:
    """Routes to measure, and a collector + per-request callback through ``register_metrics``."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, str, int]] = []

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="routes")

    @hookimpl
    def register_routers(self) -> list[APIRouter]:
        return [router]

    @hookimpl
    def lifespan(self) -> Any:
        @asynccontextmanager
        async def run() -> Any:
            yield {"routes.widgets": 42}

        return run()

    @hookimpl(optionalhook=True)
    def register_metrics(self, registry: CollectorRegistry, runtime: Runtime) -> list[Any]:
        class Widgets:
            def collect(self) -> Iterator[GaugeMetricFamily]:
                widgets = runtime.services.get("routes.widgets")
                if widgets is not None:  # read at scrape time
                    yield GaugeMetricFamily("routes_widgets", "Widgets in stock", value=widgets)

        registry.register(Widgets())
        return [lambda: lambda method, route, status: self.ended.append((method, route, status))]


@pytest.fixture
def routes() -> Routes:
    return Routes()


@pytest.fixture
def make(fastplug_app_factory: Make, routes: Routes) -> Make:
    def build(**metrics: Any) -> FastAPI:
        return fastplug_app_factory(
            plugins=["health", "metrics", "routes"], extra_plugins={"routes": routes}, metrics=metrics
        )

    return build


def scrape(client: TestClient | httpx.Client, **headers: str) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return response.text


def series(text: str, name: str) -> dict[str, float]:
    """``{'{labels}': value}`` for every sample of ``name`` in an exposition."""
    found = re.findall(rf"^{name}(\{{.*\}})? (\S+)$", text, re.M)
    return {labels: float(value) for labels, value in found}


def test_one_series_per_route_after_1000_distinct_ids(make: Make) -> None:
    with TestClient(make(), client=LOOPBACK) as client:
        for i in range(1000):
            assert client.get(f"/users/{i}").status_code == 200
        for i in range(50):
            client.get(f"/no/such/path/{i}")
        client.request("BREW", "/users/1")
        client.request("PROPFIND", "/users/1")
        text = scrape(client)
    requests = series(text, "http_requests_total")
    assert requests == {
        '{method="GET",route="/users/{user_id}",status="200"}': 1000.0,
        '{method="GET",route="<unmatched>",status="404"}': 50.0,
        '{method="OTHER",route="/users/{user_id}",status="405"}': 2.0,
    }
    assert len(series(text, "http_request_duration_seconds_count")) == 3
    assert series(text, "http_request_duration_seconds_count")['{method="GET",route="/users/{user_id}"}'] == 1000


def test_exception_is_counted_as_500(make: Make) -> None:
    with TestClient(make(), client=LOOPBACK, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
        text = scrape(client)
    assert series(text, "http_requests_total")['{method="GET",route="/boom",status="500"}'] == 1


def test_metrics_path_is_not_measured_and_sizes_are(make: Make) -> None:
    with TestClient(make(), client=LOOPBACK) as client:
        client.post("/users/1", content=b"x" * 100)  # 405, with a 100-byte body
        client.get("/users/7")
        scrape(client)
        text = scrape(client)
    assert "/metrics" not in text
    assert series(text, "http_request_size_bytes_sum")['{method="POST",route="/users/{user_id}"}'] == 100
    assert series(text, "http_response_size_bytes_sum")['{method="GET",route="/users/{user_id}"}'] == len(b'{"id":7}')


def test_in_progress_is_counted_per_route(make: Make) -> None:
    app = make()

    async def scenario() -> tuple[str, str]:
        RELEASE["event"] = asyncio.Event()
        transport = httpx.ASGITransport(app, client=LOOPBACK)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            pending = asyncio.create_task(client.get("/wait"))
            for _ in range(1000):
                during = (await client.get("/metrics")).text
                if "/wait" in during:
                    break
                await asyncio.sleep(0.01)
            RELEASE["event"].set()
            assert (await pending).text == '"done"'
            after = (await client.get("/metrics")).text
        return during, after

    during, after = asyncio.run(scenario())
    assert series(during, "http_requests_in_progress")['{method="GET",route="/wait"}'] == 1
    assert series(after, "http_requests_in_progress")['{method="GET",route="/wait"}'] == 0


def test_scraping_is_denied_from_other_networks(make: Make) -> None:
    app = make()
    with TestClient(app, client=STRANGER) as client:
        response = client.get("/metrics")
        assert response.status_code == 403
        assert "http_requests" not in response.text
    with TestClient(app, client=("::1", 50000)) as client:
        assert client.get("/metrics").status_code == 200


def test_bearer_token_allows_scraping_from_anywhere(make: Make) -> None:
    app = make(token=TOKEN, allow=[])
    with TestClient(app, client=STRANGER) as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"authorization": "Bearer not-the-token-at-all"})
        right = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert right.status_code == 200
    with TestClient(app, client=LOOPBACK) as client:  # allow = []: loopback needs the token too
        assert client.get("/metrics").status_code == 401


def test_allow_lists_networks(make: Make) -> None:
    with TestClient(make(allow=["10.0.0.0/8"]), client=STRANGER) as client:
        assert client.get("/metrics").status_code == 200


def test_timing_headers(make: Make) -> None:
    with TestClient(make(), client=LOOPBACK) as client:
        plain = client.get("/users/1")
    with TestClient(make(timing_header=True, process_time_header=True), client=LOOPBACK) as client:
        timed = client.get("/users/1")
    assert "server-timing" not in plain.headers and "x-process-time" not in plain.headers
    assert re.fullmatch(r"app;dur=\d+\.\d{3}", timed.headers["server-timing"])
    assert float(timed.headers["x-process-time"]) >= 0


def test_register_metrics_collectors_and_request_callbacks(make: Make, routes: Routes) -> None:
    with TestClient(make(), client=LOOPBACK) as client:
        client.get("/users/3")
        client.get("/nowhere")
        text = scrape(client)
    assert series(text, "routes_widgets") == {"": 42.0}
    assert routes.ended == [("GET", "/users/{user_id}", 200), ("GET", "<unmatched>", 404)]


def test_db_pool_and_queries_per_request(fastplug_app_factory: Make, sqlite_url: str) -> None:
    app = fastplug_app_factory(
        plugins=["health", "db", "metrics", "notes"],
        extra_plugins={"notes": db_notes},
        db={"url": sqlite_url, "auto_migrate": True, "query_count_header": True},
    )
    with TestClient(app, client=LOOPBACK) as client:
        client.post("/notes", json={"author": "ada", "text": "hello"})
        counted = client.get("/notes/count")
        client.get("/health/live")
        text = scrape(client)
    assert counted.headers["x-db-queries"] == "1"
    queries = series(text, "db_queries_per_request_sum")
    assert queries['{method="GET",route="/notes/count"}'] == 1
    assert queries['{method="GET",route="/health/live"}'] == 0
    assert queries['{method="POST",route="/notes"}'] >= 2
    assert series(text, "db_pool_size") == {"": 20.0}
    assert series(text, "db_pool_checked_out") == {"": 0.0}
    assert set(series(text, "db_pool_waiters")) == {""}


def test_exposition_passes_promtool(fastplug_app_factory: Make, sqlite_url: str) -> None:
    promtool = require_tool("promtool")
    app = fastplug_app_factory(
        plugins=["health", "db", "metrics", "routes"],
        extra_plugins={"routes": Routes()},
        db={"url": sqlite_url},
    )
    with TestClient(app, client=LOOPBACK, raise_server_exceptions=False) as client:
        for path in ("/users/1", "/users/2", "/boom", "/nowhere", "/health/live"):
            client.get(path)
        text = scrape(client)
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "http_request_duration_seconds_bucket" in text and "db_pool_size" in text


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"buckets": [0.5, 0.1]}, "strictly increasing"),
        ({"buckets": []}, "strictly increasing"),
        ({"token": "short"}, r"metrics\.token.*<hidden>"),  # too short; its value is never shown
        ({"allow": ["not-a-network"]}, "allow"),
        ({"path": "metrics"}, "path"),
    ],
)
def test_bad_settings_are_errors(make: Make, section: dict[str, Any], message: str) -> None:
    with pytest.raises(FastplugError, match=message) as caught:
        make(**section)
    assert "'short'" not in str(caught.value) and '"short"' not in str(caught.value)


def test_disabled_plugin_imports_nothing(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f'[default]\nplugins = ["health", "db"]\n[default.db]\nurl = "sqlite+aiosqlite:///{tmp_path}/x.db"\n'
    )
    code = (
        "import sys; from fastplug.core.app import create_app; create_app(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.startswith(('fastplug.plugins.metrics', 'prometheus_client', "
        "'fastplug.plugins.db.metrics'))))"
    )
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", code, str(settings)], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


PID_ROUTE = """
import os

from fastapi import APIRouter

router = APIRouter()


@router.get("/pid")
async def pid() -> int:
    return os.getpid()


@hookimpl
def register_routers():
    return [router]
"""


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    fake = FakeDists(tmp_path / "dists", monkeypatch)
    fake.plugin("probe", PID_ROUTE)
    yield fake
    fake.cleanup()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn needs a POSIX system")
def test_serve_with_two_workers_sums_every_worker(dists: FakeDists, tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"left by an earlier run")
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f'[default]\nplugins = ["health", "metrics", "probe"]\n[default.metrics]\nmultiprocess_dir = "{directory}"\n'
    )
    proc, base = serve_process(settings, dists.env(), "--workers", "2")
    try:
        wait_ready(proc, f"{base}/health/live")
        assert not (directory / "counter_999999.db").exists()  # wiped at start
        pids: list[int] = []
        deadline = time.monotonic() + 20
        while (len(set(pids)) < 2 or len(pids) < 40) and time.monotonic() < deadline:
            pids.append(httpx.get(f"{base}/pid", headers={"connection": "close"}).json())
        assert len(set(pids)) == 2, "both workers answered"
        sent = len(pids)
        for _ in range(6):  # new connections: scrapes answered by both workers
            text = httpx.get(f"{base}/metrics", headers={"connection": "close"}).text
            assert series(text, "http_requests_total")['{method="GET",route="/pid",status="200"}'] == sent
        victim = pids[0]
        os.kill(victim, 9)  # a worker dies; gunicorn starts another
        while time.monotonic() < deadline and any(directory.glob(f"gauge_livesum_{victim}.db")):
            time.sleep(0.1)
        assert not any(directory.glob(f"gauge_livesum_{victim}.db")), "the dead worker was marked"
        wait_ready(proc, f"{base}/health/live")
        text = httpx.get(f"{base}/metrics").text
        assert series(text, "http_requests_total")['{method="GET",route="/pid",status="200"}'] == sent
    finally:
        code, err = stop(proc)
    assert code == 0, err
