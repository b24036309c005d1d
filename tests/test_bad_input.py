"""Bad input: each mistake is one clear line naming where it is, all are reported together,
the CLI exits non-zero without a traceback (unless ``--traceback``), and secrets never show.

Test plugins are fake installed distributions (:mod:`helpers_plugins`), so they go through
the real entry-point discovery, in this process and in ``manage.py`` subprocesses alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers_plugins import FakeDists, lifespan_body

from fastplug.config.errors import FastplugError, Problem
from fastplug.core.app import create_app
from fastplug.core.bootstrap import load
from fastplug.core.lifespan import PluginStartupError

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
SECRET = "s3cr3t-Tok3n-987654"


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    """Fake installed distributions for this test only."""
    fake = FakeDists(tmp_path / "site", monkeypatch)
    yield fake
    fake.cleanup()


@pytest.fixture
def settings(fastplug_settings_file: Path, dists: FakeDists) -> Path:
    """The settings file (FASTPLUG_* variables cleared); tests overwrite it with :func:`write`."""
    return fastplug_settings_file


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path``."""
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[Problem]:
    """The problems loading ``path`` reports (it must fail)."""
    with pytest.raises(FastplugError) as info:
        load(path)
    return info.value.problems


def lines(problems: Sequence[Problem]) -> list[tuple[str, str, str | None]]:
    """``(id, message, hint)`` of each problem, for exact comparison."""
    return [(p.id, p.message, p.hint) for p in problems]


def manage(
    *args: str, cwd: Path, dists: FakeDists | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python manage.py *args`` in ``cwd``; the fake distributions are importable."""
    base = {**os.environ, **(env or {})}
    full_env = dists.env(base) if dists is not None else base
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_check_fails(path: Path, expected: Sequence[Problem], dists: FakeDists | None = None) -> None:
    """``manage.py --settings PATH check`` exits 1 listing every expected problem, no traceback."""
    result = manage("--settings", str(path), "check", cwd=path.parent, dists=dists)
    assert result.returncode == 1, result.stdout + result.stderr
    err = result.stderr.splitlines()
    for problem in expected:
        assert f"?: ({problem.id}) {problem.message}" in err, result.stderr
        if problem.hint:
            assert f"\tHINT: {problem.hint}" in err, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def assert_serve_fails(path: Path, expected: Sequence[Problem], dists: FakeDists | None = None) -> None:
    """``FASTPLUG_SETTINGS=PATH manage.py serve`` exits 1 with exactly one ``error:`` line per problem."""
    result = manage("serve", cwd=path.parent, dists=dists, env={"FASTPLUG_SETTINGS": str(path)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"error: {p}" for p in expected]
    assert "Traceback" not in result.stdout + result.stderr


# --- one test per mistake ------------------------------------------------------------


def test_settings_file_not_found(tmp_path: Path, fastplug_settings_file: Path) -> None:
    missing = tmp_path / "nope.toml"
    expected = [
        Problem(
            "fastplug.E002",
            f"{missing}: settings file not found",
            "create it, or point FASTPLUG_SETTINGS at one",
        )
    ]
    assert lines(problems_of(missing)) == lines(expected)
    assert_check_fails(missing, expected)


def test_toml_syntax_error_names_file_and_line(settings: Path) -> None:
    write(
        settings,
        """\
        [default]
        plugins = ["health"]
        [default.server]
        port =
        """,
    )
    expected = [
        Problem(
            "fastplug.E003",
            "settings.toml: invalid TOML: Invalid value (at line 4, column 7)",
            f"fix the syntax in {settings}",
        )
    ]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected)


def test_unknown_plugin_suggests_closest_name(settings: Path) -> None:
    write(settings, '[default]\nplugins = ["helth"]\n')
    (problem,) = problems_of(settings)
    assert problem.id == "fastplug.E020"
    assert problem.message == "settings.toml: unknown plugin 'helth' (did you mean 'health'?)"
    assert problem.hint is not None
    assert problem.hint.startswith("known plugins: ") and "health" in problem.hint
    assert_check_fails(settings, [Problem(problem.id, problem.message)])


def test_unknown_key_in_plugin_section(settings: Path) -> None:
    write(settings, '[default]\nplugins = ["health"]\n[default.health]\nprefx = "/status"\n')
    expected = [Problem("fastplug.E010", "settings.toml [default.health] prefx: unknown key", "did you mean 'prefix'?")]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected)


def test_wrong_type(settings: Path) -> None:
    write(settings, '[default]\nplugins = ["health"]\n[default.health]\ntimeout = "soon"\n')
    expected = [Problem("fastplug.E010", 'settings.toml [default.health] timeout: expected a number > 0, got "soon"')]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected)


def test_out_of_range_value(settings: Path) -> None:
    write(settings, '[default]\nplugins = ["health"]\n[development.server]\nport = 70000\n')
    expected = [
        Problem(
            "fastplug.E010", "settings.toml [development.server] port: expected an integer >= 0 and <= 65535, got 70000"
        )
    ]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected)


def test_value_from_environment_variable_names_the_variable(settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTPLUG_SERVER__PORT", "eighty")
    expected = [
        Problem(
            "fastplug.E010",
            'FASTPLUG_SERVER__PORT (server.port): expected an integer >= 0 and <= 65535, got "eighty"',
        )
    ]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected)


def test_missing_required_value(settings: Path, dists: FakeDists) -> None:
    dists.plugin("needy", fields=["endpoint: str"])
    write(settings, '[default]\nplugins = ["needy"]\n')
    expected = [
        Problem("fastplug.E010", "settings.toml [default.needy] endpoint: required value missing (expected a string)")
    ]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected, dists)


def test_required_plugin_not_enabled(settings: Path, dists: FakeDists) -> None:
    dists.plugin("parent")
    dists.plugin("child", requires=["parent"])
    write(settings, '[default]\nplugins = ["child"]\n')
    expected = [
        Problem(
            "fastplug.E030",
            "plugin 'child' requires 'parent', which is not enabled",
            "add 'parent' to plugins in settings.toml",
        )
    ]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected, dists)


def test_dependency_cycle(settings: Path, dists: FakeDists) -> None:
    dists.plugin("egg", requires=["hen"])
    dists.plugin("hen", after=["egg"])
    write(settings, '[default]\nplugins = ["egg", "hen"]\n')
    (problem,) = problems_of(settings)
    assert (problem.id, problem.hint) == ("fastplug.E031", "break it in requires/after")
    assert problem.message in (
        "plugins form a dependency cycle: egg -> hen -> egg",
        "plugins form a dependency cycle: hen -> egg -> hen",
    )
    assert_check_fails(settings, [problem], dists)


def test_two_plugins_with_the_same_name(settings: Path, dists: FakeDists) -> None:
    dists.add("fakedist", "1.0", {"health": "fp_health_clash"}, {"fp_health_clash": ""})
    expected = [
        Problem(
            "fastplug.E021",
            "two plugins are named 'health': built-in and fakedist 1.0",
            "uninstall one of the distributions",
        )
    ]
    assert lines(problems_of(settings)) == lines(expected)
    assert "fp_health_clash" not in sys.modules
    assert_check_fails(settings, expected, dists)


def test_entry_point_that_fails_to_import_names_the_distribution(settings: Path, dists: FakeDists) -> None:
    dists.add(
        "brokendist",
        "2.0",
        {"broken": "fp_broken"},
        {"fp_broken": "raise ImportError(\"the 'missing_dep' package is required\")\n"},
    )
    write(settings, '[default]\nplugins = ["broken"]\n')
    expected = [
        Problem(
            "fastplug.E022",
            "plugin 'broken' (brokendist 2.0) failed to import: ImportError: the 'missing_dep' package is required",
            "reinstall or fix the distribution 'brokendist'",
        )
    ]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected, dists)


def test_misspelt_hook_name(settings: Path, dists: FakeDists) -> None:
    dists.plugin("typo", body="@hookimpl\ndef register_router(settings):\n    return []\n")
    write(settings, '[default]\nplugins = ["typo"]\n')
    expected = [
        Problem(
            "fastplug.E025",
            "plugin 'typo' implements unknown hook 'register_router'",
            "did you mean 'register_routers'?",
        )
    ]
    assert lines(problems_of(settings)) == lines(expected)
    assert_check_fails(settings, expected, dists)


def test_hook_with_wrong_arguments(settings: Path, dists: FakeDists) -> None:
    dists.plugin("badargs", body="@hookimpl\ndef register_routers(settings, app):\n    return []\n")
    write(settings, '[default]\nplugins = ["badargs"]\n')
    (problem,) = problems_of(settings)
    assert problem.id == "fastplug.E024"
    assert "\n" not in problem.message
    assert problem.message.startswith("plugin 'badargs': invalid hook implementation: ")
    assert "register_routers(settings, app)" in problem.message
    assert problem.message == (
        "plugin 'badargs': invalid hook implementation: register_routers(settings, app) "
        "takes argument(s) {'app'} that the hook does not pass"
    )
    assert problem.hint == "register_routers accepts any of (settings)"
    assert_check_fails(settings, [problem], dists)


def test_secret_with_wrong_type_is_never_shown(
    settings: Path, dists: FakeDists, monkeypatch: pytest.MonkeyPatch
) -> None:
    dists.plugin("vault", fields=["api_token: SecretStr", "signing_key: SecretStr = SecretStr('x')"])
    write(settings, f'[default]\nplugins = ["vault"]\n[default.vault]\napi_token = ["{SECRET}"]\n')
    monkeypatch.setenv("FASTPLUG_VAULT__SIGNING_KEY", f'{{value = "{SECRET}"}}')
    expected = [
        Problem("fastplug.E010", "settings.toml [default.vault] api_token: expected a string (secret), got <hidden>"),
        Problem(
            "fastplug.E010",
            "FASTPLUG_VAULT__SIGNING_KEY (vault.signing_key): expected a string (secret), got <hidden>",
        ),
    ]
    with pytest.raises(FastplugError) as info:
        load(settings)
    assert lines(info.value.problems) == lines(expected)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.problems)
    assert_check_fails(settings, expected, dists)
    for args in (["serve"], ["--traceback", "serve"], ["settings"], ["plugins"]):
        result = manage(*args, cwd=settings.parent, dists=dists, env={"FASTPLUG_SETTINGS": str(settings)})
        assert result.returncode != 0
        assert SECRET not in result.stdout + result.stderr, args


def test_password_inside_url_is_never_shown(settings: Path, dists: FakeDists) -> None:
    """A URL that fails validation is echoed with its password masked."""
    dists.plugin("store", fields=["url: AnyUrl"])
    write(settings, f'[default]\nplugins = ["store"]\n[default.store]\nurl = "http://app:{SECRET}@db:99999/x"\n')
    (problem,) = problems_of(settings)
    assert problem.message.startswith("settings.toml [default.store] url: expected ")
    assert SECRET not in str(problem)
    result = manage("--settings", str(settings), "check", cwd=settings.parent, dists=dists)
    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr


# --- all together, and how the CLI reports them ---------------------------------------


def test_all_problems_are_reported_together(settings: Path, dists: FakeDists, monkeypatch: pytest.MonkeyPatch) -> None:
    dists.plugin("needy", fields=["endpoint: str"])
    dists.plugin("child", requires=["parent"])
    dists.plugin("typo", body="@hookimpl\ndef register_router(settings):\n    return []\n")
    dists.add("brokendist", "2.0", {"broken": "fp_broken"}, {"fp_broken": "raise ImportError('no driver')\n"})
    write(
        settings,
        """\
        [default]
        plugins = ["health", "helth", "needy", "child", "typo", "broken"]
        debug = "maybe"
        [default.health]
        prefx = "/status"
        timeout = "soon"
        """,
    )
    monkeypatch.setenv("FASTPLUG_SERVER__WORKERS", "0")
    expected = {
        'settings.toml [default] debug: expected a boolean (true or false), got "maybe"',
        "FASTPLUG_SERVER__WORKERS (server.workers): expected an integer >= 1 and <= 256, got 0",
        "settings.toml: unknown plugin 'helth' (did you mean 'health'?)",
        "plugin 'broken' (brokendist 2.0) failed to import: ImportError: no driver",
        "plugin 'typo' implements unknown hook 'register_router'",
        "plugin 'child' requires 'parent', which is not installed",  # no distribution provides 'parent' here
        "settings.toml [default.health] prefx: unknown key",
        'settings.toml [default.health] timeout: expected a number > 0, got "soon"',
        "settings.toml [default.needy] endpoint: required value missing (expected a string)",
    }
    problems = problems_of(settings)
    assert {p.message for p in problems} == expected
    assert len(problems) == len(expected)
    assert_check_fails(settings, problems, dists)
    assert_serve_fails(settings, problems, dists)


def test_serve_traceback_only_with_flag(settings: Path) -> None:
    write(settings, '[default]\nplugins = ["health"]\n[default.health]\nprefx = "/status"\n')
    line = "error: settings.toml [default.health] prefx: unknown key (hint: did you mean 'prefix'?)"
    env = {"FASTPLUG_SETTINGS": str(settings)}
    plain = manage("serve", cwd=settings.parent, env=env)
    assert plain.returncode == 1
    assert plain.stderr.splitlines() == [line]
    assert "Traceback" not in plain.stdout + plain.stderr

    loud = manage("--traceback", "serve", cwd=settings.parent, env=env)
    assert loud.returncode == 1
    assert "Traceback (most recent call last)" in loud.stderr
    assert "config.errors.FastplugError: settings.toml [default.health] prefx: unknown key" in loud.stderr


def test_check_reads_settings_from_environment_variable(settings: Path) -> None:
    write(settings, '[default]\nplugins = ["health"]\n[default.health]\nprefx = "/status"\n')
    result = manage("check", cwd=settings.parent.parent, env={"FASTPLUG_SETTINGS": str(settings)})
    assert result.returncode == 1
    assert "?: (fastplug.E010) settings.toml [default.health] prefx: unknown key" in result.stderr.splitlines()
    assert "Traceback" not in result.stdout + result.stderr


# --- lifespan failures ------------------------------------------------------------------

LIFESPAN_SETTINGS = """\
[default]
plugins = ["first", "second", "{bad}", "last"]
[default.server]
port = 0
[default.lifespan]
timeouts = {{ slow = 0.1 }}
"""
FAILURES = {
    "boom": "plugin 'boom' failed to start: RuntimeError: cannot connect to broker",
    "slow": "plugin 'slow' failed to start: timed out after 0.1s",
}


@pytest.fixture
def lifespan_plugins(settings: Path, dists: FakeDists) -> FakeDists:
    """first, second, last start fine; boom raises; slow never finishes starting."""
    for name in ("first", "second", "last"):
        dists.plugin(name, lifespan_body(name))
    dists.plugin("boom", lifespan_body("boom", 'raise RuntimeError("cannot connect to broker")'))
    dists.plugin("slow", lifespan_body("slow", "await asyncio.sleep(60)"))
    return dists


@pytest.mark.parametrize("bad", ["boom", "slow"])
def test_lifespan_failure_stops_started_plugins_in_reverse(
    bad: str, settings: Path, lifespan_plugins: FakeDists
) -> None:
    write(settings, LIFESPAN_SETTINGS.format(bad=bad))
    app = create_app(settings)
    with pytest.raises(PluginStartupError) as info, TestClient(app):
        pytest.fail("the app must not start")  # pragma: no cover
    assert str(info.value) == FAILURES[bad]
    assert (info.value.plugin, "\n" in str(info.value)) == (bad, False)
    assert lifespan_plugins.events == ["first.start", "second.start", f"{bad}.start", "second.stop", "first.stop"]
    assert app.state.fastplug.startup_error == FAILURES[bad]


@pytest.mark.parametrize("traceback", [False, True], ids=["plain", "traceback"])
@pytest.mark.parametrize("bad", ["boom", "slow"])
def test_serve_exits_nonzero_when_a_plugin_fails_to_start(
    bad: str, traceback: bool, settings: Path, lifespan_plugins: FakeDists
) -> None:
    write(settings, LIFESPAN_SETTINGS.format(bad=bad))
    args = ["--traceback", "serve"] if traceback else ["serve"]
    result = manage(*args, cwd=settings.parent, dists=lifespan_plugins, env={"FASTPLUG_SETTINGS": str(settings)})
    assert result.returncode != 0
    err = result.stderr.splitlines()
    reported = [line for line in err if FAILURES[bad] in line]
    assert len(reported) == (2 if traceback else 1), result.stderr  # with --traceback, also its last line
    assert reported[0].split(None, 1) == ["ERROR", FAILURES[bad]]
    events = [line.removeprefix("event: ") for line in err if line.startswith("event: ")]
    assert events == ["first.start", "second.start", f"{bad}.start", "second.stop", "first.stop"]
    assert ("Traceback" in result.stderr) is traceback
    assert "Traceback" not in result.stdout


def test_traceback_flag_shows_where_the_plugin_failed(settings: Path, lifespan_plugins: FakeDists) -> None:
    """``--traceback`` is for finding the failing line: the plugin's own frame must be in it."""
    write(settings, LIFESPAN_SETTINGS.format(bad="boom"))
    with pytest.raises(PluginStartupError) as info, TestClient(create_app(settings)):
        pytest.fail("the app must not start")  # pragma: no cover
    assert isinstance(info.value.__cause__, RuntimeError)
    result = manage(
        "--traceback", "serve", cwd=settings.parent, dists=lifespan_plugins, env={"FASTPLUG_SETTINGS": str(settings)}
    )
    assert result.returncode != 0
    assert "fp_boom.py" in result.stderr, result.stderr
    assert "RuntimeError: cannot connect to broker" in result.stderr.splitlines()
