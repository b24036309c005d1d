"""Errors for plugin authors: a hook that returns the wrong thing, a missing requirement and
``--settings``/``--env`` choosing the plugins whose commands the CLI offers.

Each wrong hook result is one line naming the plugin, the hook and what was expected, from
the app factory (startup) and from ``manage.py check`` alike. A bad plugin is one source
(:func:`helpers_plugins.plugin_source`), loaded in-process as a module for the factory and
installed as a fake distribution for the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers_plugins import FakeDists, plugin_source

from fastplug.config.errors import FastplugError, Problem
from fastplug.core import hookimpl
from fastplug.core.cli import cli
from fastplug.core.lifespan import PluginStartupError

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
SECRET = "s3cr3t-Opt10n-123"
ASYNC_CM_HINT = "decorate it with @contextlib.asynccontextmanager and return its call"

Make = Callable[..., FastAPI]


@pytest.fixture(autouse=True)
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    """Fake installed distributions for this test only (plugin sources import its ``fp_events``)."""
    fake = FakeDists(tmp_path / "site", monkeypatch)
    yield fake
    fake.cleanup()


def module_of(body: str, name: str = "bad", **info: object) -> types.ModuleType:
    """The plugin ``name`` built from ``body``, as a module object (for ``extra_plugins``)."""
    module = types.ModuleType(f"fp_inline_{name}")
    exec(compile(plugin_source(name, textwrap.dedent(body), **info), module.__name__, "exec"), module.__dict__)
    return module


def build_problems(make: Make, body: str) -> list[tuple[str, str, str | None]]:
    """``(id, message, hint)`` of the problems building an app with plugin ``bad`` reports."""
    with pytest.raises(FastplugError) as info:
        make(plugins=["health", "bad"], extra_plugins={"bad": module_of(body)})
    return [(p.id, p.message, p.hint) for p in info.value.problems]


def check_output(settings: Path, dists: FakeDists, body: str) -> str:
    """``manage.py --settings PATH check`` with plugin ``bad`` installed: must exit 1; its output."""
    dists.plugin("bad", textwrap.dedent(body))
    settings.write_text('[default]\nplugins = ["health", "bad"]\n')
    result = CliRunner().invoke(cli, ["--settings", str(settings), "check"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def assert_reported(make: Make, settings: Path, dists: FakeDists, body: str, expected: Problem) -> str:
    """Building the app (startup) and ``check`` both report exactly ``expected``; ``check``'s output."""
    assert build_problems(make, body) == [(expected.id, expected.message, expected.hint)]
    lines = check_output(settings, dists, body).splitlines()
    assert f"?: ({expected.id}) {expected.message}" in lines
    if expected.hint:
        assert f"\tHINT: {expected.hint}" in lines
    return "\n".join(lines)


def e028(detail: str, hint: str | None = None) -> Problem:
    return Problem("fastplug.E028", f"plugin 'bad': {detail}", hint)


# --- register_routers ----------------------------------------------------------------


def test_routers_bare_router(fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists) -> None:
    body = """
        from fastapi import APIRouter

        @hookimpl
        def register_routers():
            return APIRouter()
    """
    expected = e028("hook register_routers must return a list of APIRouter, got APIRouter", "return [router]")
    assert_reported(fastplug_app_factory, fastplug_settings_file, dists, body, expected)


def test_routers_list_with_non_router(
    fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists
) -> None:
    body = """
        from fastapi import APIRouter

        @hookimpl
        def register_routers():
            return [APIRouter(), "users"]
    """
    expected = e028("hook register_routers must return a list of APIRouter, got a list with str at index 1")
    assert_reported(fastplug_app_factory, fastplug_settings_file, dists, body, expected)


# --- register_middleware -------------------------------------------------------------

SHOUT = """
    from fastplug.core import MiddlewareSpec

    class Shout:
        def __init__(self, app, level=1):
            self.app = app

        async def __call__(self, scope, receive, send):
            await self.app(scope, receive, send)
"""


def test_middleware_not_a_spec(fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists) -> None:
    body = (
        SHOUT
        + """
    @hookimpl
    def register_middleware():
        return [{"name": "shout", "factory": Shout}]
    """
    )
    expected = e028("hook register_middleware must return a list of MiddlewareSpec, got a list with dict at index 0")
    assert_reported(fastplug_app_factory, fastplug_settings_file, dists, body, expected)


def test_middleware_bare_spec(fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists) -> None:
    body = (
        SHOUT
        + """
    @hookimpl
    def register_middleware():
        return MiddlewareSpec("shout", Shout)
    """
    )
    expected = e028(
        "hook register_middleware must return a list of MiddlewareSpec, got MiddlewareSpec", "return [spec]"
    )
    assert_reported(fastplug_app_factory, fastplug_settings_file, dists, body, expected)


MIDDLEWARE_BAD_OPTIONS = (
    SHOUT
    + f"""
    @hookimpl
    def register_middleware():
        return [MiddlewareSpec("shout", Shout, {{"lvl": {SECRET!r}}})]
    """
)
BAD_OPTIONS = Problem(
    "fastplug.E044",
    "plugin 'bad': middleware 'shout' options do not fit its factory Shout: got an unexpected keyword argument 'lvl'",
    "core calls Shout(app, **options); it accepts (app, level)",
)


def test_middleware_options_the_factory_does_not_accept(
    fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists
) -> None:
    """Found at build time, so ``check`` reports it too; option values never show."""
    out = assert_reported(fastplug_app_factory, fastplug_settings_file, dists, MIDDLEWARE_BAD_OPTIONS, BAD_OPTIONS)
    assert SECRET not in out


def test_serve_with_bad_middleware_options_is_one_line(fastplug_settings_file: Path, dists: FakeDists) -> None:
    dists.plugin("bad", textwrap.dedent(MIDDLEWARE_BAD_OPTIONS))
    fastplug_settings_file.write_text('[default]\nplugins = ["health", "bad"]\n')
    env = dists.env({**os.environ, "FASTPLUG_SETTINGS": str(fastplug_settings_file)})
    result = subprocess.run(
        [sys.executable, str(MANAGE), "serve", "--port", "0"],
        cwd=fastplug_settings_file.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"error: {BAD_OPTIONS}"]
    assert SECRET not in result.stdout + result.stderr


# --- exception handlers, health checks, commands -------------------------------------


def test_exception_handlers_not_a_mapping(
    fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists
) -> None:
    body = """
        async def handle(request, exc):
            return None

        @hookimpl
        def register_exception_handlers():
            return [(ValueError, handle)]
    """
    expected = e028(
        "hook register_exception_handlers must return a mapping of exception class or status code to handler, got list",
        "return {ExceptionClass: handler}",
    )
    assert_reported(fastplug_app_factory, fastplug_settings_file, dists, body, expected)


def test_health_checks_not_a_sequence(
    fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists
) -> None:
    body = """
        from fastplug.core import HealthCheck

        async def ping(services):
            return "ok"

        @hookimpl
        def register_health_checks():
            return HealthCheck("ping", ping)
    """
    expected = e028("hook register_health_checks must return a list of HealthCheck, got HealthCheck", "return [check]")
    assert_reported(fastplug_app_factory, fastplug_settings_file, dists, body, expected)


COMMANDS_NOT_CLICK = """
    import click

    def hello():
        print("hi")

    @hookimpl
    def register_commands():
        return [hello]
"""
NOT_CLICK = e028(
    "hook register_commands must return a list of click commands, got a list with function at index 0",
    "decorate each with @click.command()",
)


def test_commands_not_click_commands_in_check(fastplug_settings_file: Path, dists: FakeDists) -> None:
    lines = check_output(fastplug_settings_file, dists, COMMANDS_NOT_CLICK).splitlines()
    assert f"?: ({NOT_CLICK.id}) {NOT_CLICK.message}" in lines
    assert f"\tHINT: {NOT_CLICK.hint}" in lines


def test_commands_not_click_commands_when_run(fastplug_settings_file: Path, dists: FakeDists) -> None:
    """Asking for a command the broken plugin meant to add says why it is not there."""
    dists.plugin("bad", textwrap.dedent(COMMANDS_NOT_CLICK))
    fastplug_settings_file.write_text('[default]\nplugins = ["health", "bad"]\n')
    result = CliRunner().invoke(cli, ["--settings", str(fastplug_settings_file), "hello"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"error: {NOT_CLICK}"]


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_check_hook_returning_a_non_sequence(fastplug_settings_file: Path, dists: FakeDists, kind: str) -> None:
    body = f"""
        @hookimpl
        {"async " if kind == "async" else ""}def check():
            return "all good"
    """
    lines = check_output(fastplug_settings_file, dists, body).splitlines()
    message = "plugin 'bad': hook check must return a list of CheckMessage (or a coroutine returning one), got str"
    assert f"?: (fastplug.E028) {message}" in lines


# --- lifespan ------------------------------------------------------------------------


def start_error(make: Make, body: str) -> str:
    """The startup error of an app with plugin ``bad`` (its build must succeed)."""
    app = make(plugins=["health", "bad"], extra_plugins={"bad": module_of(body)})
    with pytest.raises(PluginStartupError) as info, TestClient(app):
        pytest.fail("the app must not start")  # pragma: no cover
    return str(info.value)


def test_lifespan_returning_an_async_generator(fastplug_app_factory: Make) -> None:
    """Only calling the hook shows what it returns, so this is found at startup (check does not start plugins)."""
    body = """
        @hookimpl
        def lifespan():
            async def run():
                yield {}

            return run()
    """
    assert start_error(fastplug_app_factory, body) == (
        "plugin 'bad' failed to start: hook lifespan must return an async context manager, got async_generator "
        f"(hint: {ASYNC_CM_HINT})"
    )


def test_lifespan_returning_a_coroutine(fastplug_app_factory: Make) -> None:
    body = """
        @hookimpl
        def lifespan():
            async def run():
                return {}

            return run()
    """
    assert start_error(fastplug_app_factory, body) == (
        "plugin 'bad' failed to start: hook lifespan must return an async context manager, got coroutine "
        "(hint: a coroutine is not a context manager: make it an async generator that yields once, "
        "decorate that with @contextlib.asynccontextmanager and return its call)"
    )


def test_lifespan_hook_written_as_async_generator(
    fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists
) -> None:
    body = """
        @hookimpl
        async def lifespan():
            yield {}
    """
    expected = e028(
        "hook lifespan must return an async context manager, is an async generator function",
        "decorate it with @contextlib.asynccontextmanager (under @hookimpl)",
    )
    assert_reported(fastplug_app_factory, fastplug_settings_file, dists, body, expected)


def test_lifespan_hook_written_as_coroutine_function(
    fastplug_app_factory: Make, fastplug_settings_file: Path, dists: FakeDists
) -> None:
    body = """
        @hookimpl
        async def lifespan():
            return {}
    """
    expected = e028(
        "hook lifespan must return an async context manager, is a coroutine function",
        "the hook must be a plain def: return the call of an inner @contextlib.asynccontextmanager function",
    )
    assert_reported(fastplug_app_factory, fastplug_settings_file, dists, body, expected)


def test_lifespan_decorated_as_documented_starts(fastplug_app_factory: Make) -> None:
    """The fix the hint gives works: the hook itself decorated with asynccontextmanager."""
    body = """
        @hookimpl
        @asynccontextmanager
        async def lifespan(app):
            yield {"bad.ready": True}
    """
    app = fastplug_app_factory(plugins=["health", "bad"], extra_plugins={"bad": module_of(body)})
    with TestClient(app) as client:
        assert client.get("/health/ready").status_code == 200


# --- plugin_info and requires --------------------------------------------------------


def test_plugin_info_of_the_wrong_type(fastplug_app_factory: Make) -> None:
    plugin = types.SimpleNamespace(plugin_info=hookimpl(lambda: {"name": "bad"}))
    with pytest.raises(FastplugError) as info:
        fastplug_app_factory(plugins=["health", "bad"], extra_plugins={"bad": plugin})
    assert [str(p) for p in info.value.problems] == [
        "plugin 'bad': plugin_info must return PluginInfo(name='bad', ...), got {'name': 'bad'}"
    ]


def test_requires_a_plugin_that_is_not_installed(fastplug_settings_file: Path, dists: FakeDists) -> None:
    dists.plugin("child", requires=["ghost"])
    fastplug_settings_file.write_text('[default]\nplugins = ["child"]\n')
    expected = Problem(
        "fastplug.E032",
        "plugin 'child' requires 'ghost', which is not installed",
        "install it (pip install the distribution that provides 'ghost') or, if it is a local plugin, "
        "list it by module path in plugins in settings.toml",
    )
    result = CliRunner().invoke(cli, ["--settings", str(fastplug_settings_file), "check"])
    assert result.exit_code == 1
    assert f"?: ({expected.id}) {expected.message}" in result.output.splitlines()
    assert f"\tHINT: {expected.hint}" in result.output.splitlines()


def test_requires_a_misspelt_plugin_suggests_the_installed_one(fastplug_app_factory: Make) -> None:
    with pytest.raises(FastplugError) as info:
        fastplug_app_factory(plugins=["bad"], extra_plugins={"bad": module_of("", requires=["helth"])})
    assert [(p.id, p.message) for p in info.value.problems] == [
        ("fastplug.E032", "plugin 'bad' requires 'helth', which is not installed (did you mean 'health'?)")
    ]


def test_requires_an_installed_plugin_that_is_not_enabled(fastplug_app_factory: Make) -> None:
    with pytest.raises(FastplugError) as info:
        fastplug_app_factory(plugins=["bad"], extra_plugins={"bad": module_of("", requires=["health"])})
    assert [str(p) for p in info.value.problems] == [
        "plugin 'bad' requires 'health', which is not enabled (hint: add 'health' to plugins in settings.toml)"
    ]


# --- --settings/--env choose the plugins whose commands the CLI has -------------------

GREETER = """
    import click

    @click.command()
    def hello():
        \"\"\"Say hello.\"\"\"
        click.echo("hello from greeter")

    @hookimpl
    def register_commands():
        return [hello]
"""


@pytest.fixture
def other_settings(fastplug_settings_file: Path, dists: FakeDists) -> Path:
    """``other/other.toml``: greeter only in production; ``./settings.toml`` never has it."""
    dists.plugin("greeter", textwrap.dedent(GREETER))
    other = fastplug_settings_file.parent / "other" / "other.toml"
    other.parent.mkdir()
    other.write_text('[default]\nplugins = ["health"]\n[production]\nplugins = ["health", "greeter"]\n')
    return other


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_settings_and_env_choose_the_commands_in_help(other_settings: Path, form: str) -> None:
    args = ["--settings", str(other_settings)] if form == "separate" else [f"--settings={other_settings}"]
    with_env = CliRunner().invoke(cli, [*args, "--env", "production", "--help"])
    without = CliRunner().invoke(cli, [*args, "--help"])
    assert with_env.exit_code == without.exit_code == 0
    assert "  hello " in with_env.output
    assert "  hello " not in without.output


def test_settings_and_env_choose_the_command_run(other_settings: Path) -> None:
    result = CliRunner().invoke(cli, ["--settings", str(other_settings), "--env=production", "hello"])
    assert (result.exit_code, result.output) == (0, "hello from greeter\n")


def test_console_script_takes_settings_before_listing_commands(other_settings: Path, dists: FakeDists) -> None:
    script = Path(sys.executable).with_name("fastplug")
    if not script.exists():
        pytest.skip("the fastplug console script is not installed beside this python")
    result = subprocess.run(
        [str(script), "--settings", str(other_settings), "--env", "production", "hello"],
        cwd=other_settings.parent,
        env=dists.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "hello from greeter\n"), result.stderr
