"""``manage.py db``: Alembic migrations and seed data on the app's database."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fastplug.core import CliContext, get_context, mask_url_password, one_line

if TYPE_CHECKING:
    from fastplug.plugins.db.migrations import Migrations
    from fastplug.plugins.db.seeding import PluginSeeder

from fastplug.plugins.db.settings import APP_BRANCH

T = TypeVar("T")


def _run(work: Callable[[Migrations], T]) -> T:
    """``work`` on the app's database in one transaction; a failure is one line, exit 1."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from fastplug.plugins.db.migrations import MigrationError, on_database

    obj = get_context()
    settings, plugins = obj.load()
    try:
        return on_database(settings, plugins, work)
    except (MigrationError, CommandError, SQLAlchemyError, OSError) as exc:
        message = str(exc) if isinstance(exc, MigrationError) else one_line(exc)
        obj.fail(MigrationError(mask_url_password(message)))


@click.group("db")
def db_group() -> None:
    """Database migrations (Alembic, a version table per plugin) and seed data on [db] url."""


@db_group.command()
@click.argument("target", default="heads")
def upgrade(target: str) -> None:
    """Upgrade to TARGET: every plugin's head (default), <plugin>@head, <plugin>@+1 or a revision id."""
    _run(lambda m: m.upgrade(target))


@db_group.command()
@click.argument("target")
def downgrade(target: str) -> None:
    """Downgrade to TARGET: base (all), <plugin>@base, <plugin>@-1 or a revision id."""
    _run(lambda m: m.downgrade(target))


@db_group.command()
def current() -> None:
    """Show the revision(s) each enabled plugin's migrations are at."""
    _run(lambda m: m.current())


@db_group.command()
def status() -> None:
    """One line per plugin with migrations (disabled ones too): enabled, current, head, state."""
    from fastplug.plugins.db.status import render

    for line in render(_run(lambda m: m.status())):
        click.echo(line)


@db_group.command()
def history() -> None:
    """List the revisions, plugin by plugin."""
    from fastplug.plugins.db import migrations

    migrations.history(*get_context().load())


@db_group.command()
@click.option("-m", "--message", required=True, help="what the revision does")
@click.option("--branch", default=APP_BRANCH, show_default=True, help="a plugin's name, or 'app'")
@click.option("--autogenerate", is_flag=True, help="compare the branch's models with the database")
def revision(message: str, branch: str, autogenerate: bool) -> None:
    """Write a new revision file on BRANCH, in its migrations directory."""
    from fastplug.plugins.db.branches import enabled_branches

    settings, plugins = get_context().load()
    known = [b.name for b in enabled_branches(settings, plugins)]
    if branch not in known:
        raise click.UsageError(f"no migrations directory for '{branch}' (known: {', '.join(known)})")

    def write(migrations: Migrations) -> None:
        migrations.revision(message, branch, autogenerate)

    _run(write)


_SEEDERS = "fastplug.db.seeders"


def _seeders(ctx: click.Context) -> list[PluginSeeder]:
    obj = ctx.ensure_object(CliContext)
    cached: list[PluginSeeder] | None = ctx.meta.get(_SEEDERS)
    if cached is None:
        from fastplug.plugins.db.seeding import SeedError, collect

        try:
            cached = collect(*obj.load())
        except SeedError as exc:
            obj.fail(exc)
        ctx.meta[_SEEDERS] = cached
    return cached


class SeedCommand(click.Command):
    """``db seed``: its own options plus those the enabled plugins' seeders contribute."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        from fastplug.plugins.db.seeding import SeedError, options

        own = super().get_params(ctx)
        taken = {name for p in self.params for name in [p.name or "", *p.opts, *p.secondary_opts]}
        try:
            extra = options(_seeders(ctx), taken)
        except SeedError as exc:
            ctx.ensure_object(CliContext).fail(exc)
        return [*self.params, *extra, *own[len(self.params) :]]


@db_group.command(cls=SeedCommand)
@click.option("--seed", type=int, help="random seed: the same seed gives the same data (default: random)")
@click.option("--batch-size", type=click.IntRange(1), default=5000, show_default=True, help="rows per insert")
@click.option("--truncate", is_flag=True, help="empty the seeded tables (and those referencing them) first")
@click.pass_context
def seed(ctx: click.Context, seed: int | None, batch_size: int, truncate: bool, **values: Any) -> None:
    """Migrate to every head, then fill the tables with realistic data (one transaction)."""
    from fastplug.plugins.db.seeding import SeedError, run, summary

    obj = ctx.ensure_object(CliContext)
    settings, plugins = obj.load()
    seeders = _seeders(ctx)
    if not seeders:
        obj.fail(SeedError("nothing to seed: no enabled plugin registers seeders (e.g. users, products, orders)"))
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    started = time.perf_counter()
    try:
        emptied, reports = asyncio.run(
            run(settings, plugins, seeders, values, seed=seed, batch_size=batch_size, truncate=truncate)
        )
    except SeedError as exc:
        obj.fail(exc)
    if emptied:
        click.echo(f"emptied {', '.join(t.name for t in emptied)}")
    for line in summary(reports, time.perf_counter() - started, seed):
        click.echo(line)
