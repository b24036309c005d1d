"""Switching plugins with migrations (tasks, users, products, orders) off and on again, on SQLite
and PostgreSQL: each has its own version table, so a disabled plugin's state never gets in the
way of ``serve``, ``check`` or ``db ...``; its tables and rows stay, and enabling it resumes it.
Databases stamped the old way (every branch in one ``alembic_version``) are adopted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from fastplug.core.app import build_app
from fastplug.core.bootstrap import load
from fastplug.core.cli import cli
from fastplug.plugins.db.migrations import Migrations, on_database
from tests.conftest import free_port, wait_for

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
ALL = ["health", "db", "tasks", "users", "products", "orders"]
HEADS = {"tasks": "9b41d6e2c7a3", "users": "a1c5e0d2b7f1", "products": "b2d6f1e3c8a2", "orders": "d4a9c1e6f2b7"}
# switching a plugin off switches off the ones that require it (orders requires the other three)
OFF = {
    "tasks": {"tasks", "orders"},
    "users": {"users", "orders"},
    "products": {"products", "orders"},
    "orders": {"orders"},
}
TABLES = ("tasks_outbox", "users", "products", "orders", "order_items")
MUG = {"sku": "MUG-1", "name": "Blue mug", "category": "kitchen", "price": "12.50", "stock": 3}


def write_settings(path: Path, url: str, plugins: list[str]) -> None:
    path.write_text(
        f"[default]\nplugins = {json.dumps(plugins)}\n"
        f'[default.db]\nurl = "{url}"\nauto_migrate = true\n'
        '[default.tasks]\nbroker_url = "memory://"\nembedded_worker = false\n'
    )


@contextmanager
def started(settings: Path) -> Iterator[TestClient]:
    """The app the settings file describes, its lifespan run (migrations at startup)."""
    with TestClient(build_app(*load(settings, None))) as client:
        yield client


def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def counts(url: str) -> dict[str, int]:
    return {table: int(sql(url, f"SELECT count(*) FROM {table}")[0][0]) for table in TABLES}  # type: ignore[call-overload]


def manage(settings: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--settings", str(settings), *args])
    return result.exit_code, result.output


def status(settings: Path) -> dict[str, tuple[str, ...]]:
    """``db status`` as {plugin: (enabled, current, head, state)}."""
    code, output = manage(settings, "db", "status")
    assert code == 0, output
    header, *lines = output.splitlines()
    assert header.split() == ["plugin", "enabled", "current", "head", "state"]
    rows = [tuple(re.split(r"\s{2,}", line.strip())) for line in lines]
    return {row[0]: row[1:] for row in rows}


def expected_status(off: set[str]) -> dict[str, tuple[str, ...]]:
    return {name: ("no" if name in off else "yes", rev, rev, "up to date") for name, rev in HEADS.items()}


def assert_rows_served(client: TestClient, ids: dict[str, int], enabled: list[str]) -> None:
    """What the API of each enabled plugin still answers about the rows written at first."""
    paths = {"users": f"/users/{ids['users']}", "products": f"/products/{ids['products']}"}
    paths["orders"] = f"/orders/{ids['orders']}"
    for plugin, path in paths.items():
        answer = client.get(path)
        assert answer.status_code == (200 if plugin in enabled else 404), (plugin, answer.text)


@contextmanager
def served(settings: Path) -> Iterator[str]:
    """``manage.py serve`` as a subprocess, ready; its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_"))}
    port = free_port()
    command = [sys.executable, str(MANAGE), "--settings", str(settings), "serve", "--port", str(port)]
    proc = subprocess.Popen(command, cwd=settings.parent, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            return httpx.get(f"{base}/health/live", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, "manage.py serve", limit=60)
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_each_plugin_off_and_on_keeps_its_rows(fastplug_settings_file: Path, db_url: str) -> None:
    settings = fastplug_settings_file
    write_settings(settings, db_url, ALL)
    with started(settings) as client:
        user = client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
        product = client.post("/products", json=MUG)
        assert user.status_code == product.status_code == 201, (user.text, product.text)
        line = {"product_id": product.json()["id"], "quantity": 1}
        order = client.post("/orders", json={"user_id": user.json()["id"], "items": [line]})
        assert order.status_code == 201, order.text
    ids = {"users": user.json()["id"], "products": product.json()["id"], "orders": order.json()["order_id"]}
    rows = counts(db_url)
    assert all(rows.values()), rows
    assert status(settings) == expected_status(set())

    for plugin, off in OFF.items():  # each start also switches the previous step's plugins on again
        enabled = [name for name in ALL if name not in off]
        write_settings(settings, db_url, enabled)
        with started(settings) as client:
            assert_rows_served(client, ids, enabled)
        assert status(settings) == expected_status(off), plugin
        assert manage(settings, "check")[0] == 0, plugin
        assert manage(settings, "db", "upgrade")[0] == 0, plugin
        code, output = manage(settings, "db", "current")
        assert code == 0, output
        assert set(output.split()) == {HEADS[name] for name in enabled if name in HEADS} | {"(head)"}
        assert counts(db_url) == rows, plugin
        if plugin == "users":  # once as a user runs it: serve, check and db status as processes
            with served(settings) as base:
                assert httpx.get(f"{base}/products/{ids['products']}").status_code == 200
            run = [sys.executable, str(MANAGE), "--settings", str(settings)]
            checked = subprocess.run([*run, "check"], capture_output=True, text=True, timeout=120)
            assert checked.returncode == 0, checked.stderr
            shown = subprocess.run([*run, "db", "status"], capture_output=True, text=True, timeout=120)
            assert shown.returncode == 0, shown.stderr
            assert re.search(r"^users\s+no\s+a1c5e0d2b7f1\s+a1c5e0d2b7f1\s+up to date$", shown.stdout, re.M)

    write_settings(settings, db_url, ALL)
    with started(settings) as client:
        assert_rows_served(client, ids, ALL)
    assert status(settings) == expected_status(set())
    assert counts(db_url) == rows


def test_a_plugin_enabled_again_gets_its_pending_migrations(fastplug_settings_file: Path, db_url: str) -> None:
    settings = fastplug_settings_file
    write_settings(settings, db_url, ALL)
    assert manage(settings, "db", "upgrade", "tasks@head")[0] == 0
    assert manage(settings, "db", "upgrade", "users@head")[0] == 0
    assert manage(settings, "db", "upgrade", "products@head")[0] == 0
    code, output = manage(settings, "db", "upgrade", "c3e7a2f4d9b3")  # orders' first revision only
    assert code == 0, output
    assert status(settings)["orders"] == ("yes", "c3e7a2f4d9b3", HEADS["orders"], "pending")

    write_settings(settings, db_url, ["db", "users", "products"])
    assert status(settings)["orders"] == ("no", "c3e7a2f4d9b3", HEADS["orders"], "pending")
    code, output = manage(settings, "db", "upgrade", "orders@head")
    assert code == 1
    assert "plugin 'orders' is not enabled: add it to plugins in settings.toml" in output

    write_settings(settings, db_url, ALL)
    with started(settings):
        pass
    assert status(settings) == expected_status(set())
    assert sql(db_url, "SELECT count(*) FROM order_emails") == [(0,)]


def test_autogenerate_never_drops_a_disabled_plugins_tables(fastplug_settings_file: Path, sqlite_url: str) -> None:
    settings = fastplug_settings_file
    write_settings(settings, sqlite_url, ALL)
    assert manage(settings, "db", "upgrade")[0] == 0
    write_settings(settings, sqlite_url, ["db", "users"])
    code, output = manage(settings, "db", "revision", "-m", "nothing", "--autogenerate")
    assert code == 0, output
    (made,) = (settings.parent / "migrations").glob("*_nothing.py")
    source = made.read_text()
    assert "drop_table" not in source and "create_table" not in source
    assert status(settings)["app"] == ("yes", "-", made.name.split("_")[0], "not migrated")


def test_downgrade_targets_go_to_their_plugin(fastplug_settings_file: Path, sqlite_url: str) -> None:
    settings = fastplug_settings_file
    write_settings(settings, sqlite_url, ALL)
    assert manage(settings, "db", "upgrade")[0] == 0
    assert manage(settings, "db", "downgrade", "orders@-1")[0] == 0
    assert status(settings)["orders"][1:] == ("c3e7a2f4d9b3", HEADS["orders"], "pending")
    code, output = manage(settings, "db", "downgrade", "--", "-1")
    assert code == 1
    assert "'-1' is ambiguous with several plugins' migrations: say orders@-1" in output
    assert manage(settings, "db", "downgrade", "orders@base")[0] == 0
    assert manage(settings, "db", "downgrade", HEADS["tasks"])[0] == 0  # a revision id: its plugin's
    assert status(settings)["tasks"] == ("yes", HEADS["tasks"], HEADS["tasks"], "up to date")
    assert manage(settings, "db", "downgrade", "base")[0] == 0
    assert {row[3] for row in status(settings).values()} == {"not migrated"}
    tables = sql(sqlite_url, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'alembic%'")
    assert tables == []


def stamp_the_old_way(url: str, revisions: list[str]) -> None:
    """Leave the schema as is, with the single version table the old layout wrote."""

    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
                for name in names:
                    if name.startswith("alembic_version"):
                        await connection.execute(text(f"DROP TABLE {name}"))
                await connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
                for rev in revisions:
                    await connection.execute(text("INSERT INTO alembic_version VALUES (:rev)"), {"rev": rev})
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.mark.parametrize("orders", ["on", "off"])
def test_a_database_stamped_the_old_way_is_adopted(fastplug_settings_file: Path, db_url: str, orders: str) -> None:
    settings = fastplug_settings_file
    write_settings(settings, db_url, ALL)
    assert manage(settings, "db", "upgrade")[0] == 0
    # what the old single table held: each branch's head, users and products implied by orders'
    stamp_the_old_way(db_url, [HEADS["orders"], HEADS["tasks"], "0123456789ab"])
    if orders == "off":
        write_settings(settings, db_url, ["db", "tasks", "users", "products"])
    assert status(settings) == expected_status(set() if orders == "on" else {"orders"})
    assert sql(db_url, "SELECT version_num FROM alembic_version") == [("0123456789ab",)]  # unknown: left alone
    with started(settings):
        pass
    assert manage(settings, "db", "upgrade")[0] == 0


def test_the_old_table_goes_once_everything_in_it_is_adopted(fastplug_settings_file: Path, sqlite_url: str) -> None:
    settings = fastplug_settings_file
    write_settings(settings, sqlite_url, ALL)
    assert manage(settings, "db", "upgrade")[0] == 0
    stamp_the_old_way(sqlite_url, [HEADS["orders"], HEADS["tasks"]])

    def adopt(migrations: Migrations) -> None:
        pass  # on_database adopts before any work

    on_database(*load(settings, None), adopt)
    names = sql(sqlite_url, "SELECT name FROM sqlite_master WHERE name LIKE 'alembic%' ORDER BY name")
    assert names == [(f"alembic_version_{name}",) for name in sorted(HEADS)]
    assert status(settings) == expected_status(set())


def test_autogenerate_compares_only_the_branchs_own_tables(
    fastplug_settings_file: Path, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastplug.plugins.users as users

    copy = tmp_path / "users_migrations"
    shutil.copytree(users.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(users, "MIGRATIONS", copy)  # the new revision goes into a copy
    settings = fastplug_settings_file
    write_settings(settings, sqlite_url, ALL)
    for target in ("tasks@head", "users@head", "products@head"):  # orders' tables are not there yet
        assert manage(settings, "db", "upgrade", target)[0] == 0
    for branch, where in (("users", copy), ("app", settings.parent / "migrations")):
        code, output = manage(settings, "db", "revision", "-m", f"on {branch}", "--branch", branch, "--autogenerate")
        assert code == 0, output
        (made,) = where.glob(f"*_on_{branch}.py")
        source = made.read_text()
        assert "create_table" not in source and "drop_table" not in source, branch  # orders' tables are orders'


def test_depends_on_another_plugins_revision_is_a_clear_error(tmp_path: Path) -> None:
    from fastplug.plugins.db.branches import Branch, MigrationError

    source = (Path(__file__).resolve().parents[1] / "plugins/users/migrations/a1c5e0d2b7f1_users.py").read_text()
    (tmp_path / "a1c5e0d2b7f1_users.py").write_text(
        source.replace("depends_on: str | Sequence[str] | None = None", 'depends_on = ("products",)')
    )
    with pytest.raises(MigrationError, match=r"plugin 'users' migrations: a revision's depends_on names 'products'"):
        Branch("users", tmp_path).script()
