"""``[db] transaction_pooler``: every read and write path through a private PgBouncer in
transaction mode (Debian's, without prepared-statement support), its two server connections
shared by many concurrent requests, and none fails."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import db_notes
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from fastplug.core import PluginInfo, hookimpl
from fastplug.core.testing import LiveServer
from fastplug.plugins.db.api import DbReader, ReadQuery
from tests.chaos.instances import PrivatePgBouncer, free_port

pytestmark = pytest.mark.slow
COUNT_NOTES = ReadQuery(select(func.count().label("n")).select_from(db_notes.Note.__table__))
reads = APIRouter()


@reads.get("/notes/count-reader")
async def count_with_the_reader(db: DbReader) -> int:
    row = await COUNT_NOTES.first(db)
    return int(row["n"]) if row else 0


class Reads:
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="reads", requires=("db",))

    @hookimpl
    def register_routers(self) -> Sequence[APIRouter]:
        return [reads]


@pytest.fixture
def pgbouncer(pg_url: str) -> Iterator[str]:
    """A private PgBouncer, ``pool_mode = transaction`` with 2 server connections, in front of
    this test's database; the SQLAlchemy URL through it."""
    url = make_url(pg_url)
    bouncer = PrivatePgBouncer(("127.0.0.1", free_port()), (url.host or "", url.port or 5432), url.database or "")
    try:
        yield bouncer.url
    finally:
        bouncer.kill()


PATHS = (
    ("POST", "/notes"),  # DbSession: a write, committed
    ("GET", "/notes/count"),  # DbSession
    ("GET", "/notes/count-read"),  # DbReadSession
    ("GET", "/notes/count-connection"),  # DbReadConnection
    ("GET", "/notes/count-reader"),  # DbReader + ReadQuery
    ("GET", "/raw"),  # RawConnection
    ("GET", "/raw/pooled"),  # RawPool.fetchval
)


def _load(base: str, rounds: int) -> Counter[str]:
    def one(n: int) -> str:
        method, path = PATHS[n % len(PATHS)]
        body = {"author": f"a{n % 5}", "text": f"note {n}"} if method == "POST" else None
        try:
            answer = httpx.request(method, base + path, json=body, timeout=20)
        except httpx.HTTPError as exc:
            return f"{path} {type(exc).__name__}"
        return f"{path} {answer.status_code}" if answer.status_code >= 300 else "ok"

    with ThreadPoolExecutor(24) as pool:  # many clients, two server connections
        return Counter(pool.map(one, range(rounds * len(PATHS))))


def test_every_path_works_through_pgbouncer_in_transaction_mode(
    fastplug_app_factory: Callable[..., FastAPI], pgbouncer: str
) -> None:
    db = {"url": pgbouncer, "transaction_pooler": True, "auto_migrate": True, "statement_timeout_ms": 30000}
    app = fastplug_app_factory(
        plugins=["health", "db", "notes", "reads"], extra_plugins={"notes": db_notes, "reads": Reads()}, db=db
    )
    with LiveServer(app) as server:
        outcome = _load(server.url, 60)
        count = httpx.get(server.url + "/notes/count-reader", timeout=10).json()
        ready = httpx.get(server.url + "/health/ready", timeout=10).status_code
    assert outcome == Counter({"ok": 60 * len(PATHS)}), outcome
    assert count == 60 and ready == 200


def test_check_says_what_a_transaction_pooler_changes(fastplug_settings_file: Any) -> None:
    from click.testing import CliRunner

    from fastplug.core.cli import cli

    fastplug_settings_file.write_text(
        '[default]\nplugins = ["db"]\n[default.db]\nurl = "postgresql+asyncpg://postgres@127.0.0.1:6432/app"\n'
    )
    out = CliRunner().invoke(cli, ["--settings", str(fastplug_settings_file), "check"]).output
    assert "db.W002" in out and "transaction_pooler = true" in out, out
    fastplug_settings_file.write_text(
        '[default]\nplugins = ["db"]\n[default.db]\nurl = "postgresql+asyncpg://postgres@127.0.0.1:6432/app"\n'
        "transaction_pooler = true\nstatement_timeout_ms = 5000\n"
    )
    out = CliRunner().invoke(cli, ["--settings", str(fastplug_settings_file), "check"]).output
    assert "db.W002" not in out and "db.W003" in out and "ALTER ROLE" in out, out
