"""``fastplug new`` and ``fastplug new-plugin``, in-process: what they write and what they refuse."""

from __future__ import annotations

import glob
import os
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from fastplug.core import create_app, load
from fastplug.core.cli import cli
from fastplug.core.discovery import discover
from fastplug.core.scaffold.names import package_name
from fastplug.core.scaffold.render import TEMPLATES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In an empty directory, no FASTPLUG_* variables, sys.path restored (core adds project folders).

    Each test's plugins have names of their own: the modules loading imports stay imported.
    """
    for name in [n for n in os.environ if n.startswith("FASTPLUG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def new_project(tmp_path: Path) -> tuple[Path, str]:
    name = unique("proj")
    result = invoke("new", str(tmp_path / name))
    assert result.exit_code == 0, result.output
    return tmp_path / name, name


def test_new_writes_a_project_with_its_own_plugin(tmp_path: Path) -> None:
    project, name = new_project(tmp_path)
    files = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert files == {
        ".gitignore",
        "README.md",
        "manage.py",
        "pyproject.toml",
        "settings.toml",
        "migrations/README.md",
        f"{name}/__init__.py",
        f"{name}/settings.py",
        f"{name}/routes.py",
        "tests/conftest.py",
        "tests/test_app.py",
        f"tests/test_{name}.py",
    }
    assert "from fastplug.core.cli import main" in (project / "manage.py").read_text()
    assert {"var/", ".venv/", ".secrets.toml", "__pycache__/"} <= set((project / ".gitignore").read_text().split())
    pytest_conf = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert pytest_conf["pythonpath"] == ["."]
    assert pytest_conf["testpaths"] == ["tests"]
    readme = (project / "README.md").read_text()
    assert "```sh\npython manage.py serve\n```" in readme
    assert "```sh\npython -m pytest\n```" in readme


def test_the_new_settings_enable_every_built_in_and_the_project_plugin(tmp_path: Path) -> None:
    project, name = new_project(tmp_path)
    raw = tomllib.loads((project / "settings.toml").read_text())
    builtins = {n for n, source in discover()[0].items() if source.builtin}
    assert set(raw["default"]["plugins"]) == builtins | {name}
    assert raw["default"]["plugins"][-1] == name
    assert raw["default"]["db"]["url"] == f"sqlite+aiosqlite:///./var/{name}.db"
    assert raw["production"]["db"]["url"].startswith("postgresql+asyncpg://")
    assert raw["production"]["cache"]["backend"] == "redis"

    settings, plugins = load(project / "settings.toml", "production")
    assert settings.section("db").url.startswith("postgresql+asyncpg://")  # type: ignore[attr-defined]
    assert plugins.known[name].origin == f"local {name}"


def test_the_new_app_answers_the_example_route(tmp_path: Path) -> None:
    project, name = new_project(tmp_path)
    overrides = {"db": {"url": "sqlite+aiosqlite:///:memory:"}}
    with TestClient(create_app(project / "settings.toml", overrides=overrides)) as client:
        assert client.get(f"/{name}/hello").json() == {"message": f"Hello from {name}"}
        assert client.get("/health/ready").status_code == 200
    assert not (project / "var").exists()


def test_new_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = invoke("new", str(tmp_path / "taken"))
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'taken'} exists and is not empty" in result.output
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]


def test_new_accepts_an_empty_directory_and_works_beside_broken_settings(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[default]\nplugins = [\n")  # not TOML: new needs no settings
    (tmp_path / "empty").mkdir()
    result = invoke("new", "empty")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "empty" / "empty" / "__init__.py").is_file()


@pytest.mark.parametrize(
    ("directory", "expected"),
    [("myproj", "myproj"), ("My-Proj", "my_proj"), ("2048", "app_2048"), ("class", "class_app"), ("--", "app")],
)
def test_the_plugin_package_is_the_directory_name_as_an_identifier(directory: str, expected: str) -> None:
    assert package_name(directory) == expected


def test_new_refuses_a_name_that_clashes_and_takes_name(tmp_path: Path) -> None:
    result = invoke("new", "health")
    assert result.exit_code == 1
    assert "error: a plugin named 'health' already exists" in result.output
    assert not (tmp_path / "health").exists()
    name = unique("site")
    result = invoke("new", "health", "--name", name)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "health" / name / "__init__.py").is_file()


def test_new_plugin_adds_a_package_and_lists_it_keeping_the_settings_layout(tmp_path: Path) -> None:
    project, name = new_project(tmp_path)
    settings = project / "settings.toml"
    before = settings.read_text()
    blog = unique("blog")
    result = invoke("--settings", str(settings), "new-plugin", blog)  # from another directory: --settings
    assert result.exit_code == 0, result.output
    after = settings.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][1] == changed[0][0].replace(f'"{name}"]', f'"{name}", "{blog}"]')
    for module in ("__init__.py", "settings.py", "routes.py"):
        assert (project / blog / module).is_file()
    assert (project / "tests" / f"test_{blog}.py").is_file()
    loaded, plugins = load(settings)
    assert {name, blog} <= set(plugins.names)
    assert loaded.section(blog).greeting == f"Hello from {blog}"  # type: ignore[attr-defined]


def test_new_plugin_uses_the_settings_file_of_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, _ = new_project(tmp_path)
    monkeypatch.chdir(project)
    notes = unique("notes")
    result = invoke("new-plugin", notes)
    assert result.exit_code == 0, result.output
    assert f"Added '{notes}' to plugins in [default] of settings.toml." in result.output
    assert (project / notes / "__init__.py").is_file()


def test_new_plugin_writes_a_conftest_when_the_project_has_none(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text('# mine\n[default]\nplugins = ["health"]  # just health\n')
    name = unique("blog")
    assert invoke("new-plugin", name).exit_code == 0
    assert (tmp_path / "tests" / "conftest.py").is_file()
    assert (
        tmp_path / "settings.toml"
    ).read_text() == f'# mine\n[default]\nplugins = ["health", "{name}"]  # just health\n'


def test_new_plugin_warns_when_an_environment_lists_plugins_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text('[default]\nplugins = ["health"]\n\n[production]\nplugins = ["health"]\n')
    name = unique("blog")
    result = invoke("new-plugin", name)
    assert result.exit_code == 0, result.output
    assert f"[production] sets plugins of its own: add '{name}' there too" in result.output


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("health", "a plugin named 'health' already exists"),
        ("json", "'json' would clash with the installed or standard module 'json'"),
        ("Blog", "'Blog' is not a plugin name"),
        ("my-blog", "'my-blog' is not a plugin name"),
        ("class", "'class' is not a plugin name"),
    ],
)
def test_new_plugin_refuses_a_bad_or_clashing_name(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "settings.toml").write_text('[default]\nplugins = ["health"]\n')
    result = invoke("new-plugin", name)
    assert result.exit_code == 1
    assert f"error: {message}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.toml"]


def test_new_plugin_refuses_an_existing_or_listed_name(tmp_path: Path) -> None:
    project, name = new_project(tmp_path)
    settings = project / "settings.toml"
    assert "a plugin named" in invoke("--settings", str(settings), "new-plugin", name).output  # listed
    (project / "things.py").write_text("")
    result = invoke("--settings", str(settings), "new-plugin", "things")
    assert result.exit_code == 1
    assert f"error: {project / 'things.py'} already exists" in result.output


def test_new_plugin_needs_a_settings_file(tmp_path: Path) -> None:
    result = invoke("new-plugin", "blog")
    assert result.exit_code == 1
    assert f"error: no settings file {tmp_path / 'settings.toml'}" in result.output
    assert "fastplug new DIR" in result.output


def test_new_plugin_package_makes_a_distribution_and_leaves_settings_alone(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text('[default]\nplugins = ["health"]\n')
    name = unique("gadget")
    result = invoke("new-plugin", name, "--package")
    assert result.exit_code == 0, result.output
    root = tmp_path / f"fastplug-{name}"
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == f"fastplug-{name}"
    assert project["entry-points"]["fastplug"] == {name: f"fastplug_{name}"}
    for path in ("README.md", f"fastplug_{name}/__init__.py", f"fastplug_{name}/routes.py", f"tests/test_{name}.py"):
        assert (root / path).is_file(), path
    assert (tmp_path / "settings.toml").read_text() == '[default]\nplugins = ["health"]\n'
    assert f"pip install -e './fastplug-{name}[test]'" in result.output
    assert f'add "{name}" to plugins' in result.output
    assert invoke("new-plugin", name, "--package").exit_code == 1  # exists now


def test_the_package_plugin_serves_its_route(tmp_path: Path) -> None:
    import importlib

    name = unique("gadget")
    assert invoke("new-plugin", name, "--package").exit_code == 0
    sys.path.insert(0, str(tmp_path / f"fastplug-{name}"))
    module = importlib.import_module(f"fastplug_{name}")
    (tmp_path / "settings.toml").write_text(f'[default]\nplugins = ["{name}"]\n')
    with TestClient(create_app(tmp_path / "settings.toml", extra_plugins={name: module})) as client:
        assert client.get(f"/{name}/hello").json() == {"message": f"Hello from {name}"}


def test_the_generated_code_is_ruff_clean(tmp_path: Path) -> None:
    import subprocess

    project, _ = new_project(tmp_path)
    assert invoke("--settings", str(project / "settings.toml"), "new-plugin", "blog").exit_code == 0
    assert invoke("new-plugin", "gadget", "--package").exit_code == 0
    rules = ["--isolated", "--line-length", "120", "--target-version", "py311"]
    for command in (["check", "--select", "E,F,W,I,B,UP,N,RUF,SIM", *rules], ["format", "--check", *rules]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command, str(tmp_path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_templates_are_not_python_files_and_all_ship_in_the_wheel() -> None:
    templates = {p.relative_to(TEMPLATES.parent).as_posix() for p in TEMPLATES.rglob("*") if p.is_file()}
    assert templates, "no templates found"
    assert all(name.endswith(".tmpl") for name in templates)  # never collected by pytest or ruff
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {
        found
        for pattern in patterns["fastplug.core.scaffold"]
        for found in glob.glob(pattern, root_dir=TEMPLATES.parent, recursive=True)
    }
    assert templates <= shipped, templates - shipped  # setuptools' globs skip dotfiles unless asked


def test_new_plugin_writes_nothing_when_the_settings_file_is_not_toml(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[default]\nplugins = [\n")
    result = invoke("new-plugin", "blog")
    assert result.exit_code == 1
    assert "error: settings.toml: invalid TOML: " in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.toml"]
