"""``manage.py db seed`` as a user runs it, on SQLite and PostgreSQL: the users, products
and orders plugins' seeders through the ``register_seeders`` hook."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from fastplug.plugins.db.api import Seeder, SeedResult
from fastplug.plugins.db.seeding import PluginSeeder, SeedError, _ordered, options
from tests.conftest import free_port

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
DOMAIN = ["db", "tasks", "users", "products", "orders"]


def write_settings(root: Path, url: str, plugins: Sequence[str] = DOMAIN) -> Path:
    listed = ", ".join(f'"{p}"' for p in plugins)
    path = root / "settings.toml"
    path.write_text(f'[default]\nplugins = [{listed}]\n[default.db]\nurl = "{url}"\n')
    return path


@pytest.fixture
def settings_file(tmp_path: Path, db_url: str) -> Path:
    return write_settings(tmp_path, db_url)


def manage(settings: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTPLUG_")}
    return subprocess.run(
        [sys.executable, str(MANAGE), "--settings", str(settings), *args],
        cwd=settings.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def seed(settings: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = manage(settings, "db", "seed", *args)
    assert result.returncode == 0, result.stderr
    return result


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one statement (committed); the rows it returns."""

    async def read() -> list[tuple[Any, ...]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(sql))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(read())


def counts(url: str) -> dict[str, int]:
    return {t: query(url, f"SELECT count(*) FROM {t}")[0][0] for t in ("users", "products", "orders", "order_items")}


def check_integrity(url: str) -> None:
    """Unique emails and SKUs, totals = sum of items, items at existing products' prices."""
    assert query(url, "SELECT count(*) - count(DISTINCT email) FROM users") == [(0,)]
    assert query(url, "SELECT count(*) - count(DISTINCT sku) FROM products") == [(0,)]
    assert query(url, "SELECT count(*) FROM users WHERE email <> lower(email) OR email NOT LIKE '%@%'") == [(0,)]
    cents = "SELECT count(*) FROM products WHERE abs(price * 100 - round(price * 100)) > 0.000001 OR price <= 0"
    assert query(url, cents) == [(0,)]  # two decimals (SQLite stores floats)
    mismatched = query(
        url,
        "SELECT o.id, o.total, sum(i.quantity * i.unit_price) FROM orders o "
        "LEFT JOIN order_items i ON i.order_id = o.id GROUP BY o.id, o.total "
        "HAVING count(i.id) = 0 OR abs(o.total - sum(i.quantity * i.unit_price)) > 0.001",
    )
    assert mismatched == []
    orphans = query(
        url,
        "SELECT count(*) FROM order_items i LEFT JOIN products p ON p.id = i.product_id "
        "WHERE p.id IS NULL OR p.price <> i.unit_price",
    )
    assert orphans == [(0,)]
    assert query(url, "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL") == [
        (0,)
    ]


def test_seed_counts_and_consistent_data(settings_file: Path, db_url: str) -> None:
    result = seed(
        settings_file,
        *("--users", "60", "--products", "25", "--orders-per-user", "3", "--items-per-order", "4"),
        *("--batch-size", "7", "--seed", "11"),
    )
    assert counts(db_url) | {"order_items": 0} == {"users": 60, "products": 25, "orders": 180, "order_items": 0}
    check_integrity(db_url)
    per_order = query(db_url, "SELECT min(n), max(n) FROM (SELECT count(*) AS n FROM order_items GROUP BY order_id) c")
    assert 1 <= per_order[0][0] <= per_order[0][1] <= 4
    assert query(db_url, "SELECT count(DISTINCT user_id), min(n), max(n) FROM "
                 "(SELECT user_id, count(*) AS n FROM orders GROUP BY user_id) c") == [(60, 3, 3)]  # fmt: skip
    assert len(query(db_url, "SELECT DISTINCT category FROM products")) > 1
    lines = result.stdout.splitlines()
    assert re.match(r"users\s+60 rows\s+\d+\.\d\ds$", lines[0])
    assert re.match(r"products\s+25 rows", lines[1])
    assert re.match(r"orders\s+180 rows", lines[2])
    assert re.match(r"order_items\s+[\d,]+ rows", lines[3])
    assert lines[-1].startswith("seeded ") and lines[-1].endswith("with --seed 11")
    assert result.stderr == ""  # no progress bar off a terminal


def test_seeding_twice_appends_and_truncate_empties_first(settings_file: Path, db_url: str) -> None:
    sizes = ("--users", "20", "--products", "10", "--orders-per-user", "2")
    seed(settings_file, *sizes, "--seed", "5")
    seed(settings_file, *sizes, "--seed", "5")  # the same names again: the ids keep them unique
    assert counts(db_url) | {"order_items": 0} == {"users": 40, "products": 20, "orders": 80, "order_items": 0}
    check_integrity(db_url)

    result = seed(settings_file, "--truncate", "--users", "4", "--products", "3", "--orders-per-user", "1")
    assert result.stdout.splitlines()[0].startswith("emptied ")
    assert counts(db_url) | {"order_items": 0} == {"users": 4, "products": 3, "orders": 4, "order_items": 0}
    check_integrity(db_url)


def test_the_app_inserts_after_seeding_without_id_collisions(settings_file: Path, db_url: str) -> None:
    assert manage(settings_file, "db", "upgrade").returncode == 0
    query(db_url, "INSERT INTO users (id, email, name) VALUES (1000, 'explicit@example.com', 'Explicit Id')")
    seed(settings_file, "--users", "30", "--products", "5", "--orders-per-user", "1")  # ids after 1000
    from fastplug.plugins.users.models import User

    async def insert() -> tuple[int, int]:
        engine = create_async_engine(db_url)
        try:
            async with AsyncSession(engine) as session:
                user = User(email="new.customer@example.com", name="New Customer")
                session.add(user)
                await session.flush()  # the id comes from the sequence (PostgreSQL)
                user_id = user.id
                await session.commit()
                await session.execute(
                    text("INSERT INTO orders (user_id, status, total) VALUES (:u, 'placed', 0)"), {"u": user_id}
                )
                await session.execute(
                    text(
                        "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                        "SELECT max(id), 1, 1, 1 FROM orders"
                    )
                )
                await session.commit()
                return user_id, (await session.execute(text("SELECT max(id) FROM orders"))).scalar_one()
        finally:
            await engine.dispose()

    user_id, order_id = asyncio.run(insert())
    assert user_id == 1031 and order_id == 31
    seed(settings_file, "--users", "2", "--products", "1", "--orders-per-user", "1")  # and seeding after the app
    assert counts(db_url)["users"] == 34


def test_the_same_seed_gives_the_same_data(settings_file: Path, db_url: str) -> None:
    sizes = ("--users", "25", "--products", "8", "--orders-per-user", "2")
    dump_sql = (
        "SELECT id, email, name FROM users ORDER BY id",
        "SELECT id, sku, name, description, category, price, stock FROM products ORDER BY id",
        "SELECT id, user_id, status, total FROM orders ORDER BY id",
        "SELECT id, order_id, product_id, quantity, unit_price FROM order_items ORDER BY id",
    )

    def dump() -> list[list[tuple[Any, ...]]]:
        return [query(db_url, sql) for sql in dump_sql]

    seed(settings_file, *sizes, "--seed", "42")
    first = dump()
    seed(settings_file, "--truncate", *sizes, "--seed", "42")  # emptied: as on a fresh database
    assert dump() == first
    seed(settings_file, "--truncate", *sizes, "--seed", "43")
    assert dump() != first


def test_a_failing_seeder_is_named_and_rolls_everything_back(settings_file: Path, db_url: str) -> None:
    seed(settings_file, "--users", "3", "--products", "2", "--orders-per-user", "0")
    result = manage(settings_file, "db", "seed", "--truncate", "--users", "5", "--products", "0")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: seeder 'orders' (plugin 'orders') failed: LookupError: no products to order: "
        "seed some with --products N; nothing was written"
    )
    assert counts(db_url) == {"users": 3, "products": 2, "orders": 0, "order_items": 0}  # truncate undone too


def test_help_lists_the_seeders_options(tmp_path: Path) -> None:
    result = manage(write_settings(tmp_path, "sqlite+aiosqlite:///./app.db"), "db", "seed", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--users", "--products", "--orders-per-user", "--items-per-order", "--seed", "--batch-size"):
        assert option in result.stdout
    assert "--truncate" in result.stdout


def test_nothing_to_seed_and_unreachable_database_are_one_line_errors(tmp_path: Path) -> None:
    result = manage(write_settings(tmp_path, "sqlite+aiosqlite:///./app.db", ["db"]), "db", "seed")
    assert result.returncode == 1
    assert result.stderr == (
        "error: nothing to seed: no enabled plugin registers seeders (e.g. users, products, orders)\n"
    )

    url = f"postgresql+asyncpg://app:secret@127.0.0.1:{free_port()}/shop"
    result = manage(write_settings(tmp_path, url), "db", "seed")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot connect to the database postgresql+asyncpg://app:********@127.0.0.1:")
    assert "secret" not in result.stderr


async def _noop(ctx: Any) -> SeedResult:
    return SeedResult()


def test_seeders_run_after_those_they_name_and_clashes_are_errors() -> None:
    def item(name: str, after: Sequence[str] = (), opts: Sequence[click.Option] = ()) -> PluginSeeder:
        return PluginSeeder(f"p_{name}", Seeder(name, _noop, options=opts, after=after))

    ordered = _ordered([item("c", ["a", "b"]), item("b", ["a"]), item("a"), item("d")])
    assert [p.seeder.name for p in ordered] == ["a", "b", "c", "d"]
    with pytest.raises(SeedError, match="seeder 'c' \\(plugin 'p_c'\\) runs after seeder 'x', which no enabled"):
        _ordered([item("c", ["x"])])
    with pytest.raises(SeedError, match="seeders wait for each other: a, b"):
        _ordered([item("a", ["b"]), item("b", ["a"])])
    clash = item("a", opts=[click.Option(["--seed"], type=int)])
    with pytest.raises(SeedError, match="option 'seed' is already defined by db seed"):
        options([clash], {"seed", "--seed"})
