"""manage.py commands, run in-process with click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fastplug.core.cli import cli


@pytest.fixture
def run(fastplug_settings_file: Path) -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, settings: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["--settings", str(settings), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_help_lists_core_commands(run: CliRunner, fastplug_settings_file: Path) -> None:
    code, out = invoke(run, fastplug_settings_file, "--help")
    assert code == 0
    for command in ("serve", "check", "plugins", "routes", "settings"):
        assert f"  {command} " in out


def test_plugins_json(run: CliRunner, fastplug_settings_file: Path) -> None:
    code, out = invoke(run, fastplug_settings_file, "plugins", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["health"]["enabled"] is True
    assert rows["health"]["source"] == "built-in"
    assert rows["health"]["order"] == 1
    assert rows["health"]["hooks"] == ["app_created", "register_routers"]


def test_plugins_table(run: CliRunner, fastplug_settings_file: Path) -> None:
    code, out = invoke(run, fastplug_settings_file, "plugins")
    header, _rule, *rows = out.splitlines()
    assert code == 0
    assert header.split() == ["name", "version", "source", "enabled", "requires", "order", "hooks"]
    assert any(row.split()[:4] == ["health", row.split()[1], "built-in", "yes"] for row in rows)


def test_routes_name_their_plugin(run: CliRunner, fastplug_settings_file: Path) -> None:
    code, out = invoke(run, fastplug_settings_file, "routes")
    assert code == 0
    lines = [line.split() for line in out.splitlines()[2:]]
    assert ["GET", "/health/live", "health_live", "health"] in lines
    assert ["GET", "/health/ready", "health_ready", "health"] in lines
    assert ["GET,HEAD", "/openapi.json", "openapi", "core"] in lines


def test_settings_shows_values_and_sources(run: CliRunner, fastplug_settings_file: Path) -> None:
    fastplug_settings_file.write_text('[default]\nplugins = ["health"]\n[production.health]\nprefix = "/p"\n')
    code, out = invoke(run, fastplug_settings_file, "--env", "production", "settings", "--json")
    rows = {row["key"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["health.prefix"] == {
        "key": "health.prefix",
        "value": "/p",
        "source": "settings.toml [production.health]",
    }
    assert rows["plugins"]["source"] == "settings.toml [default]"
    assert rows["server.port"]["source"] == "default"


def test_check_passes_on_good_settings(run: CliRunner, fastplug_settings_file: Path) -> None:
    code, out = invoke(run, fastplug_settings_file, "check")
    assert code == 0
    assert "System check identified no issues (0 silenced)." in out


def test_check_warns_about_a_section_no_plugin_owns(run: CliRunner, fastplug_settings_file: Path) -> None:
    fastplug_settings_file.write_text('[default]\nplugins = ["health"]\n[default.helth]\nprefix = "/x"\n')
    code, out = invoke(run, fastplug_settings_file, "check")
    assert code == 0
    assert "(fastplug.W001) settings.toml: [helth] belongs to no known plugin and is ignored" in out


@pytest.mark.parametrize(
    ("server", "warned"),
    [
        ('proxy_headers = true\nforwarded_allow_ips = "*"', True),
        ('proxy_headers = true\nforwarded_allow_ips = "10.0.0.1, *"', True),
        ('proxy_headers = false\nforwarded_allow_ips = "*"', False),
        ('proxy_headers = true\nforwarded_allow_ips = "10.0.0.1"', False),
    ],
)
def test_check_warns_when_any_client_may_forge_its_address(
    run: CliRunner, fastplug_settings_file: Path, server: str, warned: bool
) -> None:
    fastplug_settings_file.write_text(f'[default]\nplugins = ["health"]\n[default.server]\n{server}\n')
    code, out = invoke(run, fastplug_settings_file, "check")
    assert code == 0
    assert ("(fastplug.W003)" in out) is warned, out


def test_check_fails_with_django_style_errors(run: CliRunner, fastplug_settings_file: Path) -> None:
    fastplug_settings_file.write_text('[default]\nplugins = ["helth"]\n[default.server]\nport = "x"\n')
    result = run.invoke(cli, ["--settings", str(fastplug_settings_file), "check"])
    assert result.exit_code == 1
    assert "SystemCheckError: System check identified some issues:" in result.output
    assert "?: (fastplug.E020) settings.toml: unknown plugin 'helth' (did you mean 'health'?)" in result.output
    assert "?: (fastplug.E010) settings.toml [default.server] port: expected an integer" in result.output
    assert "System check identified 2 issues (0 silenced)." in result.output
