"""``manage.py db``: Alembic migrations on the app's database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from core.cli import get_context

if TYPE_CHECKING:
    from alembic.config import Config

from plugins.db.settings import APP_BRANCH


def _config() -> Config:
    from plugins.db.migrations import alembic_config

    return alembic_config(*get_context().load())


@click.group("db")
def db_group() -> None:
    """Database migrations (Alembic) on [db] url."""


@db_group.command()
@click.argument("target", default="heads")
def upgrade(target: str) -> None:
    """Upgrade to TARGET (default: every branch's head)."""
    from plugins.db import migrations

    migrations.upgrade(_config(), target)


@db_group.command()
@click.argument("target")
def downgrade(target: str) -> None:
    """Downgrade to TARGET: base, -1, <branch>@-1 or a revision id."""
    from plugins.db import migrations

    migrations.downgrade(_config(), target)


@db_group.command()
def current() -> None:
    """Show the revision(s) the database is at."""
    from plugins.db import migrations

    migrations.current(_config())


@db_group.command()
def history() -> None:
    """List the revisions."""
    from plugins.db import migrations

    migrations.history(_config())


@db_group.command()
@click.option("-m", "--message", required=True, help="what the revision does")
@click.option("--branch", default=APP_BRANCH, show_default=True, help="a plugin's name, or 'app'")
@click.option("--autogenerate", is_flag=True, help="compare the models with the database")
def revision(message: str, branch: str, autogenerate: bool) -> None:
    """Write a new revision file on BRANCH, in its migrations directory."""
    from plugins.db import migrations

    try:
        migrations.revision(_config(), message, branch, autogenerate)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
