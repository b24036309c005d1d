"""The profiling plugin on a real server: blocking routes named by file and line, the lag
metric, slow requests, on-demand profiles, ``manage.py profile`` and ``check``."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import profiling_app
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastplug.core.cli import cli
from fastplug.core.testing import LiveServer

PLUGINS = ["health", "metrics", "db", "profiling", "watched"]
APP_FILE = profiling_app.__file__
Make = Callable[..., FastAPI]


@pytest.fixture
def make(fastplug_app_factory: Make, sqlite_url: str) -> Make:
    def build(plugins: list[str] = PLUGINS, metrics: dict[str, Any] | None = None, **profiling: Any) -> FastAPI:
        return fastplug_app_factory(
            extra_plugins={"watched": profiling_app},
            plugins=plugins,
            db={"url": sqlite_url},
            metrics=metrics or {},
            profiling={"log_interval": 0, **profiling},
        )

    return build


@pytest.fixture
def server(make: Make) -> Iterator[LiveServer]:
    with LiveServer(make()) as live:
        yield live


def _blocked_while_fast_waits(server: LiveServer, path: str) -> float:
    """Call ``path`` and, while it runs, ``/fast``: how long ``/fast`` took (seconds)."""
    started = threading.Event()
    statuses: list[int] = []

    def slow() -> None:
        started.set()
        statuses.append(httpx.get(server.url + path, timeout=10).status_code)

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait()
    time.sleep(0.08)  # the blocking handler is running by now
    began = time.perf_counter()
    assert httpx.get(server.url + "/fast", timeout=10).status_code == 200
    waited = time.perf_counter() - began
    thread.join(10)
    assert statuses == [200]
    return waited


def _scrape(server: LiveServer) -> str:
    return httpx.get(server.url + "/metrics", timeout=10).text


def _series(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{" + want + "}") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fastplug.profiling" and r.levelno >= logging.WARNING]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "route", "marker", "function"),
    [
        ("/block/sleep", "/block/sleep", "SLEEP", "block_sleep"),
        ("/block/cpu", "/block/cpu", "SPIN", "_spin"),
        ("/block/sync-db", "/block/sync-db", "SYNCDB", "block_sync_db"),
        ("/calls-sleep", "/calls-sleep", "SLEEP", "block_sleep"),  # the request's route, not the function's
        ("/mw-block/7", "/mw-block/{n}", "MIDDLEWARE", "__call__"),  # blocked before routing
        ("/sub/block", "/sub/block", "SUB", "sub_block"),  # a mounted application's route
    ],
)
def test_a_route_that_blocks_the_loop_is_named_with_its_file_and_line(
    server: LiveServer, caplog: pytest.LogCaptureFixture, path: str, route: str, marker: str, function: str
) -> None:
    caplog.set_level(logging.WARNING, "fastplug.profiling")
    waited = _blocked_while_fast_waits(server, path)
    assert waited > 0.1  # the fast route waited for the blocked loop (a lower bound: never flaky)
    deadline = time.monotonic() + 5
    while not _warnings(caplog) and time.monotonic() < deadline:
        time.sleep(0.02)
    (warning,) = _warnings(caplog)
    assert f"by GET {route};" in warning
    assert f'File "{APP_FILE}", line {profiling_app.line_of(marker)}, in {function}' in warning
    assert "starlette" not in warning and "uvicorn" not in warning  # only the app's own frames
    blocked = _series(_scrape(server), "event_loop_blocked_seconds_total", method="GET", route=route)
    assert blocked is not None and blocked >= 0.2
    assert _series(_scrape(server), "event_loop_blocks_total", method="GET", route=route) == 1.0


@pytest.mark.slow
def test_a_route_that_awaits_as_long_is_never_blamed(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "fastplug.profiling")
    waited = _blocked_while_fast_waits(server, "/await")
    text = _scrape(server)
    assert _warnings(caplog) == []
    assert "event_loop_blocked_seconds_total{" not in text
    assert waited < 0.25  # answered while /await was waiting, not after it (0.3 s)


@pytest.mark.slow
def test_the_lag_metric_moves_when_the_loop_is_held(server: LiveServer) -> None:
    before = _scrape(server)
    total = _series(before, "event_loop_lag_seconds_count")
    assert total is not None and total > 0  # the timer runs while idle
    late_before = total - (_series(before, "event_loop_lag_seconds_bucket", le="0.1") or 0)
    _blocked_while_fast_waits(server, "/block/sleep")
    after = _scrape(server)
    count, on_time = (
        _series(after, "event_loop_lag_seconds_count"),
        _series(after, "event_loop_lag_seconds_bucket", le="0.1"),
    )
    late_after = (count or 0) - (on_time or 0)
    assert late_after == late_before + 1  # one measurement later than 100 ms: the block
    last = re.search(r"^event_loop_lag_last_seconds (\S+)$", after, re.M)
    assert last is not None and float(last.group(1)) < 0.1  # the loop is on time again


@pytest.mark.slow
def test_a_slow_request_is_logged_with_route_status_duration_and_sql_count(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fastplug.profiling")
    with LiveServer(make(slow_request_ms=200)) as live:
        assert httpx.get(live.url + "/slow-db", timeout=10).json() == {"value": 1}
        assert httpx.get(live.url + "/fast", timeout=10).status_code == 200
    (line,) = [m for m in _warnings(caplog) if m.startswith("slow request")]
    assert re.fullmatch(r"slow request: GET /slow-db -> 200 in \d+ ms, 1 SQL statements", line), line


@pytest.mark.slow
def test_slow_requests_are_logged_without_the_metrics_plugin_too(make: Make, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "fastplug.profiling")
    app = make(plugins=["health", "db", "profiling", "watched"], slow_request_ms=200)
    with LiveServer(app) as live:
        assert httpx.get(live.url + "/slow-db", timeout=10).status_code == 200
        assert httpx.get(live.url + "/fast", timeout=10).status_code == 200
    (line,) = [m for m in _warnings(caplog) if m.startswith("slow request")]
    assert re.fullmatch(r"slow request: GET /slow-db -> 200 in \d+ ms, 1 SQL statements", line), line


def test_slow_requests_are_sampled() -> None:
    from fastplug.plugins.profiling.slow import SlowRequests

    slow = SlowRequests(0.0, 0.0)
    slow.observe("GET", "/x", 200, 2.0)
    assert slow.seen == 1  # counted, not logged (sample rate 0)


# on-demand profiles


def test_the_profile_flag_is_taken_off_the_query_and_nothing_else_changes() -> None:
    from fastplug.plugins.profiling.on_demand import _without_flag, wanted

    query = b"a=%FF&b=%C3%A9&c&_profile=speedscope&d=1+2"
    scope = {"type": "http", "query_string": query, "headers": []}
    assert wanted(scope) == "speedscope"
    assert _without_flag(scope)["query_string"] == b"a=%FF&b=%C3%A9&c&d=1+2"
    assert wanted({"query_string": b"x=_profile", "headers": []}) is None  # a value, not the flag


def test_a_single_module_plugin_in_site_packages_does_not_make_libraries_app_code(tmp_path: Path) -> None:
    import sysconfig
    import types

    import starlette.routing

    from fastplug.plugins.profiling.stacks import StackReader

    site = sysconfig.get_paths()["purelib"]
    module = types.ModuleType("single_plugin")
    module.__file__ = f"{site}/single_plugin.py"
    reader = StackReader([], [module, profiling_app])
    assert reader.is_app_file(f"{site}/single_plugin.py")
    assert not reader.is_app_file(starlette.routing.__file__)
    assert reader.is_app_file(APP_FILE)


@pytest.mark.slow
@pytest.mark.parametrize("ask", ["query", "header"])
def test_an_on_demand_profile_holds_the_handlers_frames(make: Make, ask: str) -> None:
    with LiveServer(make(on_demand=True)) as live:
        if ask == "query":
            answer = httpx.get(live.url + "/work?_profile=speedscope", timeout=30)
        else:
            answer = httpx.get(live.url + "/work", headers={"X-Profile": "speedscope"}, timeout=30)
        page = httpx.get(live.url + "/work?_profile", timeout=30)
    assert answer.status_code == 200 and answer.headers["x-profiled-status"] == "200"
    assert answer.headers["content-type"] == "application/json" and answer.headers["cache-control"] == "no-store"
    frames = {frame["name"] for frame in answer.json()["shared"]["frames"]}
    assert {"work", "handler_of_profile"} <= frames
    assert page.headers["content-type"].startswith("text/html") and "handler_of_profile" in page.text


@pytest.mark.slow
def test_a_stored_profile_leaves_the_answer_as_it_is(make: Make, tmp_path: Path) -> None:
    store = tmp_path / "profiles"
    with LiveServer(make(on_demand=True, profile_dir=str(store))) as live:
        answer = httpx.get(live.url + "/work?_profile=html", timeout=30)
    assert answer.status_code == 200 and "total" in answer.json()
    stem = answer.headers["x-profile-file"]
    assert "handler_of_profile" in (store / f"{stem}.html").read_text()
    assert json.loads((store / f"{stem}.speedscope.json").read_text())["shared"]["frames"]


def test_profiles_are_for_the_operator_only(make: Make) -> None:
    token = "a-metrics-token-of-some-length"
    app = make(on_demand=True)
    with TestClient(app, base_url="http://localhost") as client:  # client "testclient": not loopback
        assert client.get("/work?_profile").status_code == 403
        assert client.get("/work?_profile=pdf").status_code == 400
        assert client.get("/work").json()["total"] > 0  # no flag: the route as usual
    app = make(on_demand=True, metrics={"token": token})
    with TestClient(app, base_url="http://localhost") as client:
        refused = client.get("/work?_profile")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        granted = client.get("/work?_profile", headers={"Authorization": f"Bearer {token}"})
        assert granted.status_code == 200 and "handler_of_profile" in granted.text


# manage.py profile and check


WORKY = """
from fastapi import APIRouter
from fastplug.core import PluginInfo, hookimpl

router = APIRouter()


def crunch() -> int:
    return sum(i * i for i in range(100_000))


@router.get("/crunch")
async def crunch_route() -> dict[str, int]:
    return {"total": crunch()}


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="worky")


@hookimpl
def register_routers(settings):
    return [router]
"""


def test_manage_py_profile_prints_where_the_time_went(fastplug_settings_file: Path) -> None:
    (fastplug_settings_file.parent / "worky.py").write_text(WORKY)  # a local plugin beside the settings
    fastplug_settings_file.write_text('[default]\nplugins = ["health", "metrics", "profiling", "worky"]\n')
    args = ["--settings", str(fastplug_settings_file), "profile", "GET", "/crunch", "-n", "10"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    first, *_ = result.output.splitlines()
    assert re.fullmatch(r"GET /crunch: 10 requests \(200 x10\); mean [\d.]+ ms, slowest [\d.]+ ms", first)
    assert re.search(r"crunch_route +\S*worky\.py:\d+", result.output)  # the handler in the call tree
    assert re.search(r"crunch +\S*worky\.py:\d+", result.output)


def test_check_warns_on_profiles_in_production_without_a_token(fastplug_settings_file: Path) -> None:
    fastplug_settings_file.write_text(
        '[default]\nplugins = ["health", "metrics", "profiling"]\n[production.profiling]\non_demand = true\n'
    )
    result = CliRunner().invoke(cli, ["--settings", str(fastplug_settings_file), "--env", "production", "check"])
    assert "profiling.W001" in result.output


def test_with_the_metrics_plugin_its_token_is_what_guards_profiles(fastplug_settings_file: Path) -> None:
    fastplug_settings_file.write_text(
        '[default]\nplugins = ["health", "metrics", "profiling"]\n'
        '[production.profiling]\non_demand = true\nallow = ["10.0.0.0/8"]\n'  # not read: metrics decides
    )
    result = CliRunner().invoke(cli, ["--settings", str(fastplug_settings_file), "--env", "production", "check"])
    assert "profiling.W001" in result.output


def test_a_lag_interval_too_coarse_for_the_threshold_is_a_settings_error(fastplug_settings_file: Path) -> None:
    fastplug_settings_file.write_text(
        '[default]\nplugins = ["profiling"]\n[default.profiling]\nlag_interval = 0.2\nblock_threshold_ms = 100\n'
    )
    result = CliRunner().invoke(cli, ["--settings", str(fastplug_settings_file), "check"])
    assert result.exit_code == 1
    assert "profiling" in result.output and "lag_interval" in result.output
