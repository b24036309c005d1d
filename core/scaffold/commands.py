"""``fastplug new DIR`` and ``fastplug new-plugin NAME [--package]`` (need no settings file)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from fastplug.config.errors import FastplugError, Problem


def _fail(exc: FastplugError | OSError) -> NoReturn:
    problems = exc.problems if isinstance(exc, FastplugError) else [exc]
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(1)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.command("new", short_help="Create a project: settings.toml, manage.py, a plugin, tests.")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--name", help="the project's own plugin package (default: DIRECTORY's name as an identifier)")
def new_command(directory: Path, name: str | None) -> None:
    """Create a project in DIRECTORY (new or empty): settings.toml, manage.py, a plugin, tests."""
    from fastplug.core.scaffold.generate import create_project

    try:
        made = create_project(directory, name)
    except (FastplugError, OSError) as exc:
        _fail(exc)
    where = _relative(made.root)
    click.echo(f"Created {where} ({len(made.files)} files; its own plugin: {made.name}/). Next:")
    click.echo(f"  cd {where}")
    click.echo(f"  python manage.py serve    # http://127.0.0.1:8000/{made.name}/hello")
    click.echo("  python -m pytest          # with pytest installed")


@click.command("new-plugin", short_help="Add a local plugin (--package: a distributable one).")
@click.argument("name")
@click.option(
    "--package",
    is_flag=True,
    help="a distributable plugin: fastplug-NAME/ in the current directory, with pyproject.toml",
)
@click.pass_context
def new_plugin_command(ctx: click.Context, name: str, package: bool) -> None:
    """Add local plugin NAME/ beside the settings file (listed in its plugins), or --package."""
    from fastplug.config.sources import settings_path
    from fastplug.core.scaffold.generate import create_local_plugin, create_package_plugin

    try:
        if package:
            made = create_package_plugin(Path.cwd(), name)
        else:
            settings_file = settings_path(ctx.find_root().params.get("settings_path"))
            if not settings_file.is_file():
                hint = "run it in a project (fastplug new DIR makes one) or pass --settings"
                raise FastplugError([Problem("fastplug.E067", f"no settings file {settings_file}", hint)])
            made = create_local_plugin(settings_file, name)
    except (FastplugError, OSError) as exc:
        _fail(exc)
    click.echo(f"Created {_relative(made.root)}/ ({len(made.files)} files).")
    if package:
        click.echo("Next:")
    else:
        click.echo(f"Added '{name}' to plugins in [default] of {_relative(settings_file)}.")
    for note in made.notes:
        click.echo(f"  {note}")
