"""Shared fixtures: core's own pytest plugin (core.testing) provides the fastplug_* ones."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from fastplug.core.testing import require_service, require_tool


def wait_for(predicate: Callable[[], Any], what: str, limit: float = 30.0) -> Any:
    """Poll ``predicate`` until it is truthy (bounded: a hang fails, nothing is timed)."""
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def events() -> list[str]:
    """What the probe plugins did, in order."""
    return []


PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


async def _pg_admin(*statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test (dropped after): its SQLAlchemy URL."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"fp_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in this test's temp dir."""
    return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'app.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each database the db plugin supports: the test runs once per backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


def free_port() -> int:
    """A TCP port nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_redis() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start (and restart) a throwaway redis-server on a free port; killed at the end."""
    binary = require_tool("redis-server")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        procs.append(proc)
        client = redis_sync.Redis(port=port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis_sync.ConnectionError:
                time.sleep(0.05)
        client.close()
        return proc

    start.port = port  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
