"""A real third-party plugin (tests/fixtures/fastplug-hello), found through its installed
``fastplug`` entry point: settings, routes, middleware, lifespan, health, CLI, listing.

Install it with ``pip install -e tests/fixtures/fastplug-hello``. Without it these tests
are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from fastplug.config.errors import FastplugError
from fastplug.core.app import create_app
from fastplug.core.bootstrap import load
from fastplug.core.discovery import discover

DIST = "fastplug-hello"
VERSION = "1.2.3"
MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
HELLO_SETTINGS = """\
[default]
plugins = ["health", "hello"]

[default.hello]
greeting = "bonjour"
api_token = "tok-123-secret"
"""


def _installed_version() -> str | None:
    try:
        return md.version(DIST)
    except md.PackageNotFoundError:
        return None


@pytest.fixture(autouse=True)
def _require_hello() -> None:
    """Skip when fastplug-hello is not installed; fail instead under CI=true."""
    if _installed_version() is not None:
        return
    reason = f"{DIST} is not installed (pip install -e tests/fixtures/fastplug-hello)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI=true: the test environment must install it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def hello(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The plugin module, with its lifespan event log emptied."""
    import fastplug_hello

    monkeypatch.setattr(fastplug_hello, "EVENTS", [])
    return fastplug_hello


@pytest.fixture
def settings(fastplug_settings_file: Path) -> Path:
    """A settings file enabling health and hello (FASTPLUG_* variables cleared)."""
    fastplug_settings_file.write_text(HELLO_SETTINGS)
    return fastplug_settings_file


def manage(*args: str, settings: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python manage.py --settings SETTINGS *args`` run in the settings' directory."""
    return subprocess.run(
        [sys.executable, str(MANAGE), "--settings", str(settings), *args],
        cwd=settings.parent,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_installed_version_is_the_fixtures() -> None:
    assert _installed_version() == VERSION


def test_discovered_through_its_entry_point() -> None:
    known, clashes = discover()
    source = known["hello"]
    assert "hello" not in clashes
    assert (source.builtin, source.distribution, source.version, source.origin) == (
        False,
        DIST,
        VERSION,
        f"{DIST} {VERSION}",
    )
    assert source.entry_point is not None
    assert (source.entry_point.group, source.entry_point.value) == ("fastplug", "fastplug_hello")


def test_settings_section_is_validated(settings: Path) -> None:
    settings.write_text(HELLO_SETTINGS + 'greting = "hi"\n')
    with pytest.raises(FastplugError) as info:
        load(settings)
    ((message, hint),) = [(p.message, p.hint) for p in info.value.problems]
    assert message == "settings.toml [default.hello] greting: unknown key"
    assert hint == "did you mean 'greeting'?"


def test_settings_reach_the_plugin(settings: Path, hello: ModuleType) -> None:
    loaded, plugins = load(settings)
    conf = loaded.section("hello", hello.HelloSettings)
    assert conf.greeting == "bonjour"
    assert conf.api_token is not None and conf.api_token.get_secret_value() == "tok-123-secret"
    assert plugins.names == ["health", "hello"]
    (plugin,) = [p for p in plugins if p.name == "hello"]
    assert (plugin.version, plugin.obj) == (VERSION, hello)


def test_routes_middleware_lifespan_and_health_check(settings: Path, hello: ModuleType) -> None:
    app = create_app(settings)
    runtime = app.state.fastplug
    assert [(plugin, spec.name) for plugin, spec in runtime.middleware] == [("hello", "hello.header")]
    assert [(plugin, check.name) for plugin, check in runtime.health_checks] == [("hello", "hello")]
    assert hello.EVENTS == []
    with TestClient(app, client=("127.0.0.1", 50000)) as client:  # loopback: shown the health details
        assert hello.EVENTS == ["start"]
        assert runtime.started == ["hello"]
        assert runtime.services["hello.started"] is True

        response = client.get("/hello")
        assert response.status_code == 200
        assert response.json() == {"greeting": "bonjour"}
        assert response.headers["x-hello"] == "1"
        assert client.get("/health/live").headers["x-hello"] == "1"

        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ok"
        assert body["checks"]["hello"]["status"] == "ok"
        assert body["checks"]["hello"]["detail"] == {"started": True}
    assert hello.EVENTS == ["start", "stop"]


def test_environment_variable_overrides_plugin_setting(
    settings: Path, hello: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTPLUG_HELLO__GREETING", "salut")
    with TestClient(create_app(settings)) as client:
        assert client.get("/hello").json() == {"greeting": "salut"}


def test_cli_command(settings: Path) -> None:
    result = manage("hello", settings=settings)
    assert (result.returncode, result.stdout, result.stderr) == (0, "bonjour\n", "")

    help_text = manage("--help", settings=settings)
    assert help_text.returncode == 0
    commands = [line.split(None, 1) for line in help_text.stdout.split("Commands:", 1)[1].splitlines() if line.strip()]
    assert ["hello", "Print the greeting from [hello] settings."] in commands


def test_cli_command_with_broken_settings_reports_the_problem(settings: Path) -> None:
    """A plugin command with broken settings prints the settings problem, not 'No such command'."""
    settings.write_text(HELLO_SETTINGS + 'greting = "hi"\n')
    result = manage("hello", settings=settings)
    assert result.returncode == 1, result.stderr
    assert "error: settings.toml [default.hello] greting: unknown key (hint: did you mean 'greeting'?)" in (
        result.stderr.splitlines()
    )
    assert "No such command" not in result.stderr


def test_check_runs_the_plugin_check(settings: Path) -> None:
    assert manage("check", settings=settings).returncode == 0
    settings.write_text(HELLO_SETTINGS.replace('"bonjour"', '""'))
    result = manage("check", settings=settings)
    assert result.returncode == 0, result.stderr  # a warning does not fail the check
    assert "hello: (hello.W001) greeting is empty" in result.stdout.splitlines()
    assert "\tHINT: set [hello] greeting" in result.stdout.splitlines()


def test_plugins_json_lists_the_distribution(settings: Path) -> None:
    result = manage("plugins", "--json", settings=settings)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["hello"] == {
        "name": "hello",
        "version": VERSION,
        "source": f"{DIST} {VERSION}",
        "enabled": True,
        "requires": [],
        "after": [],
        "hooks": [
            "check",
            "lifespan",
            "register_commands",
            "register_health_checks",
            "register_middleware",
            "register_routers",
        ],
        "order": 2,
    }
    assert "tok-123-secret" not in result.stdout


def test_settings_command_masks_the_token(settings: Path) -> None:
    result = manage("settings", "--json", settings=settings)
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["hello.greeting"] == {
        "key": "hello.greeting",
        "value": "bonjour",
        "source": "settings.toml [default.hello]",
    }
    assert rows["hello.api_token"]["value"] == "********"
    assert "tok-123-secret" not in result.stdout


def test_disabled_plugin_is_listed_but_never_imported(fastplug_settings_file: Path) -> None:
    """Run in a fresh interpreter: other tests have imported fastplug_hello into this one."""
    fastplug_settings_file.write_text('[default]\nplugins = ["health"]\n\n[default.hello]\ngreeting = "unused"\n')
    code = textwrap.dedent(
        """\
        import json, sys
        from fastplug.core.app import create_app
        from fastplug.core.discovery import discover

        app = create_app(sys.argv[1])
        known, _ = discover()
        imported = sorted(m for m in sys.modules if m.partition(".")[0] == "fastplug_hello")
        print(json.dumps({"known": "hello" in known, "imported": imported}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(fastplug_settings_file)],
        cwd=fastplug_settings_file.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"known": True, "imported": []}

    listing = manage("plugins", "--json", settings=fastplug_settings_file)
    assert listing.returncode == 0, listing.stderr
    (row,) = [row for row in json.loads(listing.stdout) if row["name"] == "hello"]
    assert (row["enabled"], row["version"], row["source"], row["hooks"]) == (False, VERSION, f"{DIST} {VERSION}", [])
    assert "hello" not in manage("--help", settings=fastplug_settings_file).stdout.split("Commands:", 1)[1]
