"""settings.toml layering: environments, FASTPLUG_* variables, .secrets.toml, sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastplug.config import FastplugError, load_raw
from fastplug.core.bootstrap import load
from fastplug.core.effective import MASK, effective_settings, mask

LAYERED = """
[default]
plugins = ["health"]
title = "base"
[default.server]
port = 8000
keepalive = 7
[default.lifespan.timeouts]
health = 3.0
[default.middleware]
order = ["a", "b"]

[development.server]
port = 8001

[production]
title = "prod"
[production.server]
port = 80
workers = 4
[production.middleware]
order = ["c"]
"""


@pytest.fixture
def layered(fastplug_settings_file: Path) -> Path:
    fastplug_settings_file.write_text(LAYERED)
    return fastplug_settings_file


def test_development_is_the_default_environment(layered: Path) -> None:
    raw = load_raw(layered)
    assert raw.env == "development"
    assert raw.values["server"] == {"port": 8001, "keepalive": 7}
    assert raw.values["title"] == "base"


def test_environment_tables_merge_key_by_key_and_lists_replace(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTPLUG_ENV", "production")
    raw = load_raw(layered)
    assert raw.env == "production"
    assert raw.values["server"] == {"port": 80, "keepalive": 7, "workers": 4}
    assert raw.values["middleware"]["order"] == ["c"]
    assert raw.values["plugins"] == ["health"]
    assert str(raw.sources[("server", "port")]) == "settings.toml [production.server]"
    assert str(raw.sources[("server", "keepalive")]) == "settings.toml [default.server]"


def test_environment_variables_override_any_key(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTPLUG_SERVER__PORT", "9000")
    monkeypatch.setenv("FASTPLUG_LIFESPAN__TIMEOUTS__HEALTH", "1.5")
    monkeypatch.setenv("FASTPLUG_MIDDLEWARE__ORDER", '["z"]')
    monkeypatch.setenv("FASTPLUG_HEALTH__PREFIX", "/status")
    settings, _ = load(layered)
    assert settings.core.server.port == 9000
    assert settings.core.server.keepalive == 7
    assert settings.core.lifespan.timeouts == {"health": 1.5}
    assert settings.core.middleware.order == ["z"]
    assert settings.section("health").prefix == "/status"  # type: ignore[attr-defined]
    assert str(settings.raw.sources[("server", "port")]) == "FASTPLUG_SERVER__PORT"


def test_fastplug_settings_points_at_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('[default]\nplugins = ["health"]\n[default.health]\nprefix = "/hc"\n')
    monkeypatch.setenv("FASTPLUG_SETTINGS", str(other))
    monkeypatch.chdir(tmp_path)
    settings, plugins = load()
    assert settings.path == other
    assert plugins.names == ["health"]
    assert settings.section("health").prefix == "/hc"  # type: ignore[attr-defined]
    assert "SETTINGS" not in {k.upper() for k in settings.raw.values}


def test_secrets_file_beside_settings_is_layered_and_masked(layered: Path) -> None:
    (layered.parent / ".secrets.toml").write_text(
        '[default]\ntitle = "from-secrets"\n[default.server]\nforwarded_allow_ips = "10.0.0.1"\n'
    )
    settings, _ = load(layered)
    assert settings.core.title == "from-secrets"
    assert str(settings.raw.sources[("title",)]) == ".secrets.toml [default]"
    rows = {key: (value, source) for key, value, source in effective_settings(settings)}
    assert rows["server.forwarded_allow_ips"] == ("10.0.0.1", ".secrets.toml [default.server]")
    assert rows["server.backlog"] == (2048, "default")


def test_mask_hides_secret_values_and_url_passwords() -> None:
    from pydantic import SecretStr

    assert mask("anything", SecretStr("hunter2")) == MASK
    assert mask("api_token", "hunter2") == MASK
    assert mask("url", "postgresql+asyncpg://app:hunter2@db:5432/app") == f"postgresql+asyncpg://app:{MASK}@db:5432/app"
    assert mask("url", "redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_overrides_layer_on_top_for_tests(layered: Path) -> None:
    settings, _ = load(layered, overrides={"server": {"port": 1234}})
    assert settings.core.server.port == 1234
    assert settings.core.server.keepalive == 7


def test_unknown_environment_is_an_error(layered: Path) -> None:
    with pytest.raises(FastplugError, match=r"environment 'staging' .* has no \[staging\] table"):
        load_raw(layered, env="staging")


def test_key_outside_any_environment_is_an_error(fastplug_settings_file: Path) -> None:
    fastplug_settings_file.write_text('plugins = ["health"]\n[default]\n')
    with pytest.raises(FastplugError, match="top-level key 'plugins' is outside any environment table"):
        load_raw(fastplug_settings_file)


def test_missing_settings_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FastplugError, match="settings file not found"):
        load_raw(tmp_path / "nope.toml")


def test_docs_are_served_by_default_and_off_with_docs_false(fastplug_app_factory) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(fastplug_app_factory(plugins=["health"])) as client:
        assert [client.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [200, 200, 200]
    with TestClient(fastplug_app_factory(plugins=["health"], docs=False)) as client:
        assert [client.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [404, 404, 404]


def test_the_shipped_production_settings_turn_the_docs_off() -> None:
    shipped = Path(__file__).resolve().parents[1] / "settings.toml"
    assert load(shipped, "production")[0].core.docs is False
    assert load(shipped, "development")[0].core.docs is True
