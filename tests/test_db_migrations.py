"""``manage.py db ...`` (Alembic) as a user runs it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from tests.helpers_plugins import FakeDists

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
TESTS = Path(__file__).resolve().parent

TAGS = """
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.db.api import Base


class Tag(Base):
    __tablename__ = "t_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(40))


@hookimpl
def plugin_info():
    return PluginInfo(name="tags", requires=("db",))


@hookimpl
def register_models():
    return [Tag]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A settings.toml with db, the notes plugin (it ships a migration) and a tags plugin
    (models, no migration), installed as entry points."""
    dists = FakeDists(tmp_path / "dists", monkeypatch)
    dists.add("fp-notes", "1.0", {"notes": "db_notes"})
    dists.add("fp-tags", "1.0", {"tags": "fp_tags"}, {"fp_tags": TAGS})
    (tmp_path / "settings.toml").write_text(
        f'[default]\nplugins = ["db", "notes", "tags"]\n[default.db]\nurl = "{db_url}"\n'
    )
    env = dists.env()
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{TESTS}"
    yield tmp_path, {k: v for k, v in env.items() if not k.startswith("FASTPLUG_")}
    dists.cleanup()


def manage(project: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    root, env = project
    return subprocess.run(
        [sys.executable, str(MANAGE), "--settings", str(root / "settings.toml"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return {t for t in asyncio.run(read()) if not t.startswith("alembic_version")}


def test_upgrade_revision_autogenerate_and_downgrade(project: tuple[Path, dict[str, str]], db_url: str) -> None:
    root, _ = project
    upgraded = manage(project, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert tables(db_url) == {"t_authors", "t_notes"}
    assert manage(project, "db", "current").stdout.strip() == "a1b2c3d4e5f6 (head)"

    made = manage(project, "db", "revision", "-m", "add tags", "--autogenerate")
    assert made.returncode == 0, made.stderr
    (revision_file,) = (root / "migrations").glob("*_add_tags.py")
    source = revision_file.read_text()
    upgrade_part, downgrade_part = source.split("def downgrade")
    assert "op.create_table('t_tags'" in upgrade_part
    assert "op.drop_table('t_tags')" in downgrade_part
    assert "branch_labels: str | Sequence[str] | None = ('app',)" in source
    assert "t_notes" not in source  # other plugins' tables are theirs

    assert manage(project, "db", "upgrade").returncode == 0
    assert tables(db_url) == {"t_authors", "t_notes", "t_tags"}

    down = manage(project, "db", "downgrade", "app@base")
    assert down.returncode == 0, down.stderr
    assert tables(db_url) == {"t_authors", "t_notes"}
    assert manage(project, "db", "downgrade", "base").returncode == 0
    assert tables(db_url) == set()
    assert manage(project, "db", "current").stdout.strip() == ""


def test_revision_on_an_unknown_branch_is_a_usage_error(project: tuple[Path, dict[str, str]]) -> None:
    result = manage(project, "db", "revision", "-m", "x", "--branch", "nope")
    assert result.returncode == 2
    assert "no migrations directory for 'nope' (known: notes, app)" in result.stderr
