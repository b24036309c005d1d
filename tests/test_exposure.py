"""Who sees ``/metrics`` and the details of ``/health/ready``: the access rule (networks, or a
bearer token that loopback does not bypass), the separate metrics port (uvicorn, and gunicorn
with two workers sharing it), readiness details for the operator only, and the check warnings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastplug.config.errors import FastplugError
from fastplug.core import LOOPBACK, AccessRule, HealthCheck, PluginInfo, PluginStartupError, hookimpl
from fastplug.core.bootstrap import load
from fastplug.core.cli import cli
from fastplug.core.testing import require_service
from fastplug.plugins.metrics.checks import exposure
from tests.conftest import PG_HOST, PG_PORT, free_port
from tests.helpers_plugins import FakeDists
from tests.test_metrics import PID_ROUTE, series
from tests.test_serve import MANAGE, serve_process, stop, wait_ready

Make = Callable[..., FastAPI]
TOKEN = "exposure-token-0123456789"
BEARER = {"authorization": f"Bearer {TOKEN}"}
LOOPBACK_CLIENT = ("127.0.0.1", 50000)
STRANGER = ("203.0.113.9", 50000)
LEAK = "secret-db.internal:6543 as user sekrit_user"  # what a failing check's error reveals
PUBLIC_KEYS = {"status", "critical"}


def scope(client: tuple[str, int] | None, **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "client": client,
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
    }


# --- the access rule ---------------------------------------------------------------------


def test_unset_allow_means_loopback_without_a_token_and_nobody_with_one() -> None:
    assert AccessRule.build(None).networks == LOOPBACK
    with_token = AccessRule.build(None, TOKEN)
    assert with_token.networks == ()
    assert with_token.decide(scope(LOOPBACK_CLIENT)) == 401  # loopback is no pass once a token is set
    assert with_token.decide(scope(("::1", 1))) == 401
    assert with_token.decide(scope(LOOPBACK_CLIENT, authorization=f"bearer {TOKEN}")) is None
    assert with_token.decide(scope(STRANGER, Authorization=f"Bearer {TOKEN}")) is None
    assert with_token.decide(scope(STRANGER, authorization="Bearer exposure-token-012345678X")) == 401
    assert with_token.decide(scope(STRANGER, authorization=f"Basic {TOKEN}")) == 401
    assert TOKEN not in repr(with_token)


def test_explicit_allow_admits_its_networks_beside_the_token() -> None:
    rule = AccessRule.build(["10.1.0.0/16"], TOKEN)
    assert rule.decide(scope(("10.1.2.3", 1))) is None
    assert rule.decide(scope(("::ffff:10.1.2.3", 1))) is None  # IPv4-mapped, from a dual-stack socket
    assert rule.decide(scope(LOOPBACK_CLIENT)) == 401
    assert AccessRule.build([]).decide(scope(LOOPBACK_CLIENT)) == 403  # nothing admits: no challenge
    assert AccessRule.build(None).decide(scope(("testclient", 1))) == 403  # not an address
    assert AccessRule.build(None).decide(scope(None)) == 403


# --- /metrics on the app's port and on its own -------------------------------------------


def metrics_app(make: Make, plugins: tuple[str, ...] = (), **metrics: Any) -> FastAPI:
    return make(plugins=["health", "metrics", *plugins], metrics=metrics)


def test_token_set_loopback_needs_it(fastplug_app_factory: Make) -> None:
    with TestClient(metrics_app(fastplug_app_factory, token=TOKEN), client=LOOPBACK_CLIENT) as client:
        refused = client.get("/metrics")
        admitted = client.get("/metrics", headers=BEARER)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert admitted.status_code == 200 and "http_requests_total" in admitted.text


def test_metrics_port_serves_the_path_and_the_app_port_404s_it(fastplug_app_factory: Make) -> None:
    port = free_port()
    app = metrics_app(fastplug_app_factory, token=TOKEN, port=port)
    base = f"http://127.0.0.1:{port}"
    with TestClient(app, client=LOOPBACK_CLIENT) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/metrics", headers=BEARER).status_code == 404
        with httpx.Client(base_url=base) as scraper:
            scraped = scraper.get("/metrics", headers=BEARER)
            refused = scraper.get("/metrics")
            spoofed = scraper.get("/metrics", headers={"x-forwarded-for": "127.0.0.1"})
            elsewhere = scraper.get("/health/live", headers=BEARER)
            posted = scraper.post("/metrics", headers=BEARER)
    assert scraped.status_code == 200, scraped.text
    assert series(scraped.text, "http_requests_total") == {
        '{method="GET",route="/health/live",status="200"}': 1.0,
        '{method="GET",route="<unmatched>",status="404"}': 1.0,  # the app port's /metrics: app traffic
    }
    assert refused.status_code == spoofed.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert elsewhere.status_code == 404 and posted.status_code == 405
    with pytest.raises(httpx.TransportError):  # closed with the app
        httpx.get(f"{base}/metrics", headers=BEARER, timeout=2)


def test_a_taken_metrics_port_fails_startup_clearly(fastplug_app_factory: Make) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = metrics_app(fastplug_app_factory, port=port)
        failed = rf"plugin 'metrics' failed to start: .*127\.0\.0\.1:{port}"
        with pytest.raises(PluginStartupError, match=failed), TestClient(app):
            pass


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"host": ""}, "host"),
        ({"allow": "10.0.0.0/8"}, "allow"),
    ],
)
def test_bad_metrics_port_settings_are_errors(
    fastplug_app_factory: Make, section: dict[str, Any], message: str
) -> None:
    with pytest.raises(FastplugError, match=message):
        metrics_app(fastplug_app_factory, **section)


@pytest.mark.parametrize(
    ("section", "message"),
    [({"detail_token": "short"}, r"health\.detail_token.*<hidden>"), ({"detail_allow": ["nope"]}, "detail_allow")],
)
def test_bad_health_detail_settings_are_errors(
    fastplug_app_factory: Make, section: dict[str, Any], message: str
) -> None:
    with pytest.raises(FastplugError, match=message) as caught:
        fastplug_app_factory(plugins=["health"], health=section)
    assert "short" not in str(caught.value)


# --- /health/ready: details for the operator only ----------------------------------------


class Failing:
    """A plugin whose health check fails with an error naming a host, a port and a user."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="store")

    @hookimpl
    def register_health_checks(self) -> list[HealthCheck]:
        async def down(services: Any) -> None:
            raise ConnectionError(f"cannot reach {LEAK}")

        async def up(services: Any) -> dict[str, int]:
            return {"pool_size": 17}

        return [HealthCheck("store", down), HealthCheck("pool", up, critical=False)]


def ready(
    make: Make, client: tuple[str, int], plugins: list[str], headers: dict[str, str] | None = None, **sections: Any
) -> httpx.Response:
    app = make(plugins=plugins, extra_plugins={"store": Failing()}, **sections)
    with TestClient(app, client=client) as http:
        return http.get("/health/ready", headers=headers)


def assert_public(response: httpx.Response) -> None:
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    body = response.json()
    assert body == {
        "status": "fail",
        "checks": {"store": {"status": "fail", "critical": True}, "store.pool": {"status": "ok", "critical": False}},
        "failed": ["store"],
    }
    assert "secret-db" not in response.text and "sekrit_user" not in response.text and "17" not in response.text
    assert response.headers["cache-control"] == "no-store"


def assert_detailed(response: httpx.Response) -> None:
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["store"]["error"] == f"ConnectionError: cannot reach {LEAK}"
    assert checks["store.pool"]["detail"] == {"pool_size": 17}
    assert "duration_ms" in checks["store"]


def test_without_metrics_only_loopback_sees_the_details(fastplug_app_factory: Make) -> None:
    plugins = ["health", "store"]
    assert_public(ready(fastplug_app_factory, STRANGER, plugins))
    assert_detailed(ready(fastplug_app_factory, LOOPBACK_CLIENT, plugins))


def test_details_follow_the_metrics_rule(fastplug_app_factory: Make) -> None:
    plugins = ["health", "metrics", "store"]
    metrics = {"token": TOKEN}
    assert_public(ready(fastplug_app_factory, LOOPBACK_CLIENT, plugins, metrics=metrics))
    assert_public(ready(fastplug_app_factory, STRANGER, plugins, {"authorization": "Bearer nope"}, metrics=metrics))
    assert_detailed(ready(fastplug_app_factory, STRANGER, plugins, BEARER, metrics=metrics))
    allowed = {"allow": ["203.0.113.0/24"], "token": TOKEN}
    assert_detailed(ready(fastplug_app_factory, STRANGER, plugins, metrics=allowed))


def test_health_settings_override_the_metrics_rule(fastplug_app_factory: Make) -> None:
    plugins = ["health", "metrics", "store"]
    own = {"detail_token": "health-detail-token-42"}
    sections = {"metrics": {"token": TOKEN}, "health": own}
    assert_public(ready(fastplug_app_factory, STRANGER, plugins, BEARER, **sections))  # not the metrics token
    bearer = {"authorization": "Bearer health-detail-token-42"}
    assert_detailed(ready(fastplug_app_factory, STRANGER, plugins, bearer, **sections))
    assert_public(ready(fastplug_app_factory, LOOPBACK_CLIENT, plugins, **sections))  # a token: loopback needs it
    sections = {"health": {"detail_allow": ["203.0.113.9/32"]}}
    assert_detailed(ready(fastplug_app_factory, STRANGER, plugins, **sections))
    assert_public(ready(fastplug_app_factory, LOOPBACK_CLIENT, plugins, **sections))


def test_live_and_the_ready_status_need_no_credentials(fastplug_app_factory: Make) -> None:
    app = fastplug_app_factory(plugins=["health", "metrics"], metrics={"token": TOKEN})
    with TestClient(app, client=STRANGER) as client:
        assert client.get("/health/live").status_code == 200
        response = client.get("/health/ready")
    assert response.status_code == 200 and response.json() == {"status": "ok", "checks": {}}


# --- check warnings ----------------------------------------------------------------------


def check_output(path: Path, text: str) -> str:
    path.write_text(text)
    result = CliRunner().invoke(cli, ["--settings", str(path), "check"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


SERVER_PROXIED = '[default.server]\nproxy_headers = true\nforwarded_allow_ips = "{ips}"\n'


@pytest.mark.parametrize(
    ("metrics", "server", "warned"),
    [
        # the defaults: loopback, app on loopback: nothing
        ("", "", set()),
        ("allow = []\n", "", {"W001"}),
        # behind a proxy trusting everyone: any allowlist is spoofable, unless a token alone decides
        ("", SERVER_PROXIED.format(ips="*"), {"W002"}),
        (f'token = "{TOKEN}"\n', SERVER_PROXIED.format(ips="*"), set()),
        (f'token = "{TOKEN}"\nport = 9100\nallow = ["127.0.0.0/8"]\n', SERVER_PROXIED.format(ips="*"), set()),
        # the proxy's own address is allowed: what it forwards without X-Forwarded-For scrapes
        ('allow = ["10.0.0.0/24"]\n', SERVER_PROXIED.format(ips="10.0.0.5"), {"W002"}),
        ('allow = ["10.0.1.0/24"]\n', SERVER_PROXIED.format(ips="10.0.0.5, 10.0.0.0/24"), set()),
        # a public bind without proxy headers: a reverse proxy on this host is loopback
        ("", '[default.server]\nhost = "0.0.0.0"\n', {"W003"}),
        (f'token = "{TOKEN}"\n', '[default.server]\nhost = "0.0.0.0"\n', set()),
        ("port = 9100\n", '[default.server]\nhost = "0.0.0.0"\n', set()),
        # broad allowlists
        ('allow = ["10.0.0.0/8"]\n', "", {"W004"}),
        ('allow = ["10.1.0.0/16", "fd00::/48"]\n', "", set()),
        ('allow = ["fd00::/32"]\n', "", {"W004"}),
        (f'allow = ["10.0.0.0/8"]\ntoken = "{TOKEN}"\n', "", set()),
    ],
)
def test_check_warns_about_exposure(fastplug_settings_file: Path, metrics: str, server: str, warned: set[str]) -> None:
    text = f'[default]\nplugins = ["health", "metrics"]\n{server}[default.metrics]\n{metrics}'
    out = check_output(fastplug_settings_file, text)
    assert set(re.findall(r"\(metrics\.(W\d+)\)", out)) == warned, out
    assert TOKEN not in out


def test_warnings_name_the_networks_and_the_fix(fastplug_settings_file: Path) -> None:
    text = '[default]\nplugins = ["health", "metrics"]\n' + SERVER_PROXIED.format(ips="10.0.0.5")
    out = check_output(fastplug_settings_file, text + '[default.metrics]\nallow = ["10.0.0.0/8"]\n')
    assert "(metrics.W002) [metrics] allow includes 10.0.0.0/8, which [server] forwarded_allow_ips trusts" in out
    assert "(metrics.W004) [metrics] allow includes 10.0.0.0/8, broader than an IPv4 /16" in out
    assert "HINT: set [metrics] token and leave allow unset" in out


@pytest.mark.parametrize("env", ["development", "production"])
def test_the_shipped_settings_expose_nothing(env: str) -> None:
    settings, _ = load(MANAGE.parent / "settings.toml", env)
    conf = settings.section("metrics")
    assert exposure(conf, settings.core.server) == []  # type: ignore[arg-type]
    if env == "production":
        assert conf.allow is None and conf.port is not None  # type: ignore[attr-defined]


# --- real server processes ---------------------------------------------------------------


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    fake = FakeDists(tmp_path / "dists", monkeypatch)
    fake.plugin("probe", PID_ROUTE)
    yield fake
    fake.cleanup()


def project(tmp_path: Path, plugins: list[str], sections: str, secrets: str = "") -> Path:
    """A temp project: settings.toml (and .secrets.toml); returns the settings file."""
    settings = tmp_path / "settings.toml"
    settings.write_text(f"[default]\nplugins = {plugins!r}\n{sections}".replace("'", '"'))
    if secrets:
        (tmp_path / ".secrets.toml").write_text(secrets)
    return settings


SECRET_TOKEN = f'[default.metrics]\ntoken = "{TOKEN}"\n'


@pytest.mark.slow
@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "xff-star"])
def test_serve_token_is_required_from_loopback(dists: FakeDists, tmp_path: Path, proxied: bool) -> None:
    server = SERVER_PROXIED.format(ips="*") if proxied else ""
    settings = project(tmp_path, ["health", "metrics", "probe"], server, SECRET_TOKEN)
    proc, base = serve_process(settings, dists.env())
    spoof = {"x-forwarded-for": "127.0.0.1"} if proxied else {}
    try:
        wait_ready(proc, f"{base}/health/live")
        refused = httpx.get(f"{base}/metrics", headers=spoof)
        wrong = httpx.get(f"{base}/metrics", headers={**spoof, "authorization": "Bearer not-the-right-token"})
        admitted = httpx.get(f"{base}/metrics", headers={**spoof, **BEARER})
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert refused.status_code == wrong.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "http_requests" not in refused.text
    assert admitted.status_code == 200 and "http_requests_total" in admitted.text
    assert TOKEN not in err


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn needs a POSIX system")
@pytest.mark.parametrize("workers", [1, 2], ids=["uvicorn", "gunicorn"])
def test_serve_metrics_port_sums_every_worker(dists: FakeDists, tmp_path: Path, workers: int) -> None:
    port = free_port()
    sections = f"[default.metrics]\nport = {port}\n"
    settings = project(tmp_path, ["health", "metrics", "probe"], sections, SECRET_TOKEN)
    proc, base = serve_process(settings, dists.env(), "--workers", str(workers))
    scrape_url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_ready(proc, f"{base}/health/live")
        pids: list[int] = []
        deadline = time.monotonic() + 20
        while (len(set(pids)) < workers or len(pids) < 20) and time.monotonic() < deadline:
            pids.append(httpx.get(f"{base}/pid", headers={"connection": "close"}).json())
        assert len(set(pids)) == workers, "every worker answered"
        on_app_port = httpx.get(f"{base}/metrics", headers=BEARER)
        counts = []
        for _ in range(8):  # new connections: the kernel spreads them over the workers' sockets
            text = httpx.get(scrape_url, headers={**BEARER, "connection": "close"}).text
            counts.append(series(text, "http_requests_total").get('{method="GET",route="/pid",status="200"}'))
        refused = httpx.get(scrape_url)
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert on_app_port.status_code == 404
    assert counts == [len(pids)] * 8, "each scrape sums both workers"
    assert refused.status_code == 401
    assert f"/metrics served on http://127.0.0.1:{port} only" in err


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["refused", "no-such-role"])
def test_serve_ready_details_only_with_the_token(tmp_path: Path, failure: str) -> None:
    if failure == "no-such-role":
        require_service("PostgreSQL", PG_HOST, PG_PORT)
        host, port = PG_HOST, PG_PORT
    else:
        host, port = "127.0.0.1", free_port()
    url = f"postgresql+asyncpg://exposure_probe_user@{host}:{port}/exposure_nowhere"
    sections = f'[default.db]\nurl = "{url}"\nconnect_timeout = 2\n'
    settings = project(tmp_path, ["health", "metrics", "db"], sections, SECRET_TOKEN)
    proc, base = serve_process(settings, dict(os.environ))
    try:
        wait_ready(proc, f"{base}/health/live")
        public = httpx.get(f"{base}/health/ready", timeout=10)
        operator = httpx.get(f"{base}/health/ready", headers=BEARER, timeout=10)
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert public.status_code == operator.status_code == 503
    assert public.json() == {"status": "fail", "checks": {"db": {"status": "fail", "critical": True}}, "failed": ["db"]}
    error = operator.json()["checks"]["db"]["error"]
    revealing = "exposure_probe_user" if failure == "no-such-role" else "ConnectionRefusedError"
    assert revealing in error, error
    for secret in (revealing, "exposure_probe_user", str(port), host, "error", "duration_ms"):
        assert secret not in public.text
    assert "duration_ms" in operator.json()["checks"]["db"]


def test_a_process_without_the_metrics_plugin_imports_none_of_it(tmp_path: Path) -> None:
    """The health plugin finds the metrics rule through a service: nothing is imported for it."""
    settings = tmp_path / "settings.toml"
    settings.write_text('[default]\nplugins = ["health"]\n')
    code = (
        "import sys; from fastplug.core.app import create_app; create_app(sys.argv[1]); "
        "print([m for m in sys.modules if m.startswith('fastplug.plugins.metrics')])"
    )
    run = subprocess.run([sys.executable, "-c", code, str(settings)], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
