"""Local plugins: an entry of ``plugins`` may be a module path importable from the project."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fastplug.config import FastplugError
from fastplug.core import create_app, load

PLUGIN = """
from fastapi import APIRouter

from fastplug.core import PluginInfo, PluginSettings, hookimpl


class Settings(PluginSettings):
    word: str = "hi"


router = APIRouter()


@router.get("/{name}")
async def say() -> dict[str, str]:
    from fastplug.core import Runtime  # noqa: F401 - the public API is importable from a local plugin
    return {{"said": WORD}}


WORD = "{word}"


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="{name}", settings=Settings)


@hookimpl
def register_routers():
    return [router]
"""


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _project(tmp_path: Path, plugins: list[str], extra: str = "") -> Path:
    settings = tmp_path / "settings.toml"
    listed = ", ".join(f'"{p}"' for p in plugins)
    settings.write_text(f"[default]\nplugins = [{listed}]\n{extra}")
    return settings


@pytest.fixture(autouse=True)
def _clean_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the project dir core adds is removed after


def test_a_module_beside_settings_is_a_plugin(tmp_path: Path) -> None:
    name = _unique("notes")
    (tmp_path / f"{name}.py").write_text(PLUGIN.format(name=name, word="from a module"))
    app = create_app(_project(tmp_path, ["health", name]))
    with TestClient(app) as client:
        assert client.get(f"/{name}").json() == {"said": "from a module"}
        assert client.get("/health/ready").status_code == 200


def test_a_dotted_path_names_the_plugin_by_its_last_part(tmp_path: Path) -> None:
    top, name = _unique("app"), _unique("blog")
    package = tmp_path / top / "plugins" / name
    package.mkdir(parents=True)
    (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / top / "plugins" / "__init__.py").write_text("")
    (package / "__init__.py").write_text(PLUGIN.format(name=name, word="from a package"))
    settings = _project(tmp_path, ["health", f"{top}.plugins.{name}"], f'\n[default.{name}]\nword = "set"\n')
    loaded, plugins = load(settings)
    assert plugins.names == ["health", name]
    assert loaded.section(name).word == "set"  # type: ignore[attr-defined]
    source = plugins.known[name]
    assert source.origin == f"local {top}.plugins.{name}"
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/{name}").json() == {"said": "from a package"}


def test_a_section_key_of_a_local_plugin_is_validated(tmp_path: Path) -> None:
    name = _unique("notes")
    (tmp_path / f"{name}.py").write_text(PLUGIN.format(name=name, word="x"))
    settings = _project(tmp_path, [name], f"\n[default.{name}]\nwrod = 1\n")
    with pytest.raises(FastplugError) as caught:
        load(settings)
    assert str(caught.value) == f"settings.toml [default.{name}] wrod: unknown key (hint: did you mean 'word'?)"


def test_an_unknown_module_path_is_an_error_that_says_how_to_list_one(tmp_path: Path) -> None:
    with pytest.raises(FastplugError) as caught:
        load(_project(tmp_path, ["health", "app.plugins.nothere"]))
    message = str(caught.value)
    assert message.startswith("settings.toml: unknown plugin 'app.plugins.nothere' (hint: known plugins: ")
    assert "or list a local plugin by its module path from the settings file's directory" in message


def test_a_local_plugin_that_fails_to_import_names_its_file(tmp_path: Path) -> None:
    name = _unique("broken")
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(FastplugError) as caught:
        load(_project(tmp_path, [name]))
    assert str(caught.value) == (
        f"plugin '{name}' (local {name}) failed to import: RuntimeError: boom (hint: fix {tmp_path / name}.py)"
    )


def test_a_local_plugin_named_like_a_built_in_is_a_clash(tmp_path: Path) -> None:
    top = _unique("app")
    (tmp_path / top).mkdir()
    (tmp_path / top / "__init__.py").write_text("")
    (tmp_path / top / "health.py").write_text(PLUGIN.format(name="health", word="x"))
    with pytest.raises(FastplugError) as caught:
        load(_project(tmp_path, [f"{top}.health"]))
    assert str(caught.value).startswith(f"two plugins are named 'health': built-in and local {top}.health")


def test_an_unlisted_local_module_is_never_imported(tmp_path: Path) -> None:
    name = _unique("unlisted")
    (tmp_path / f"{name}.py").write_text("raise SystemExit('imported!')\n")
    load(_project(tmp_path, ["health"]))
    assert name not in sys.modules


def test_a_project_with_its_own_config_core_and_plugins_modules(tmp_path: Path) -> None:
    """The user's ``config``/``core``/``plugins`` are theirs: fastplug's are ``fastplug.*``."""
    tag = _unique("mine")
    (tmp_path / "config.py").write_text(f"TAG = '{tag}'\n")
    for folder in ("core", "plugins"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text(f"TAG = '{tag}'\n")
    name = _unique("site")
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import config, core, plugins
            from fastplug.core import PluginInfo, hookimpl

            TAGS = (config.TAG, core.TAG, plugins.TAG)

            @hookimpl
            def plugin_info():
                return PluginInfo(name="{name}")
            """
        )
    )
    for module in ("config", "core", "plugins"):
        sys.modules.pop(module, None)
    try:
        _, plugins = load(_project(tmp_path, ["health", "db", name]))
        assert plugins.names == ["health", "db", name]
        assert (tag, tag, tag) == sys.modules[name].TAGS
    finally:
        for module in ("config", "core", "plugins"):
            sys.modules.pop(module, None)
