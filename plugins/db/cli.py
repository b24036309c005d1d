"""``manage.py db``: Alembic migrations and seed data on the app's database."""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

import click

from fastplug.core import CliContext, get_context

if TYPE_CHECKING:
    from alembic.config import Config

    from fastplug.plugins.db.seeding import PluginSeeder

from fastplug.plugins.db.settings import APP_BRANCH


def _config() -> Config:
    from fastplug.plugins.db.migrations import alembic_config

    return alembic_config(*get_context().load())


@click.group("db")
def db_group() -> None:
    """Database migrations (Alembic) and seed data on [db] url."""


@db_group.command()
@click.argument("target", default="heads")
def upgrade(target: str) -> None:
    """Upgrade to TARGET (default: every branch's head)."""
    from fastplug.plugins.db import migrations

    migrations.upgrade(_config(), target)


@db_group.command()
@click.argument("target")
def downgrade(target: str) -> None:
    """Downgrade to TARGET: base, -1, <branch>@-1 or a revision id."""
    from fastplug.plugins.db import migrations

    migrations.downgrade(_config(), target)


@db_group.command()
def current() -> None:
    """Show the revision(s) the database is at."""
    from fastplug.plugins.db import migrations

    migrations.current(_config())


@db_group.command()
def history() -> None:
    """List the revisions."""
    from fastplug.plugins.db import migrations

    migrations.history(_config())


@db_group.command()
@click.option("-m", "--message", required=True, help="what the revision does")
@click.option("--branch", default=APP_BRANCH, show_default=True, help="a plugin's name, or 'app'")
@click.option("--autogenerate", is_flag=True, help="compare the models with the database")
def revision(message: str, branch: str, autogenerate: bool) -> None:
    """Write a new revision file on BRANCH, in its migrations directory."""
    from fastplug.plugins.db import migrations

    try:
        migrations.revision(_config(), message, branch, autogenerate)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


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
