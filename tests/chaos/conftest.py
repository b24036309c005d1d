"""Fixtures of the chaos suite: private services, started for a test and killed after it.

Every test here is marked ``chaos`` (``pytest -m "not chaos"`` leaves the suite out). A
missing binary skips with its reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.app import ChaosApp
from chaos.instances import PrivatePostgres, PrivateRabbit, PrivateRedis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("load"))  # one after another, beside the rest


@pytest.fixture
def chaos_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster (database ``app``), removed after the test."""
    pg = PrivatePostgres()
    try:
        yield pg
    finally:
        pg.kill()


@pytest.fixture
def chaos_redis() -> Iterator[PrivateRedis]:
    """A private redis-server, killed after the test."""
    redis = PrivateRedis()
    try:
        yield redis
    finally:
        redis.resume() if redis.proc is not None else None
        redis.kill()


@pytest.fixture
def chaos_rabbit() -> Iterator[PrivateRabbit]:
    """A private RabbitMQ node, killed and removed after the test."""
    rabbit = PrivateRabbit()
    try:
        yield rabbit
    finally:
        rabbit.remove()


@pytest.fixture
def chaos_app(tmp_path: Path) -> Iterator[type[ChaosApp]]:
    """``chaos_app(overrides)`` -> a :class:`ChaosApp` in this test's temp dir, closed after."""
    apps: list[ChaosApp] = []

    def make(overrides: dict, name: str = "project") -> ChaosApp:  # type: ignore[type-arg]
        app = ChaosApp(tmp_path / name, overrides)
        apps.append(app)
        return app

    yield make  # type: ignore[misc]
    for app in apps:
        app.close()
