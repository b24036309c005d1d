"""schemathesis against the OpenAPI of the app the shipped plugins build, on SQLite and on
PostgreSQL: no 5xx, and every response (status, content type, headers, body) as documented."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastplug.core.testing import LiveServer, require_service
from tests.conftest import PG_HOST, PG_PORT, _pg_admin

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 60
PLUGINS = ["health", "metrics", "compression", "db", "cache", "tasks", "users", "products", "orders"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _settings(directory: Path, url: str) -> Path:
    path = directory / "settings.toml"
    path.write_text(
        f"[default]\nplugins = {PLUGINS!r}\n"
        f"[default.db]\nurl = {url!r}\nauto_migrate = true\n"
        '[default.tasks]\nbroker_url = "memory://"\n'
        "[default.metrics]\ntiming_header = true\n"
    )
    return path


def _fill(base: str) -> None:
    """A few rows, so generated ids and cursors also reach the 200 paths."""
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(1, 4):
            client.post("/users", json={"email": f"fill{i}@example.com", "name": f"Fill {i}"}).raise_for_status()
            client.post(
                "/products",
                json={"sku": f"FILL-{i}", "name": f"Fill {i}", "category": "tools", "price": "9.99", "stock": 1000},
            ).raise_for_status()
        client.post("/orders", json={"user_id": 1, "items": [{"product_id": 1, "quantity": 1}]}).raise_for_status()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on a live uvicorn server with its own database (per module and backend)."""
    from fastplug.core.app import build_app
    from fastplug.core.bootstrap import load

    directory = tmp_path_factory.mktemp(f"api-{request.param}")
    name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'app.db'}"
    else:
        require_service("PostgreSQL", PG_HOST, PG_PORT)
        name = f"fp_api_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        url = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    try:
        app = build_app(*load(_settings(directory, url), None, {}, None))
        with LiveServer(app) as server:
            _fill(server.url)
            yield server
    finally:
        if name is not None:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _exercise(operation: Any) -> str | None:
    """Run generated cases (valid and invalid data) against one operation; the first
    failure, described, or None."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=st.one_of(operation.as_strategy(mode) for mode in GenerationMode))
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS, headers={"Accept-Encoding": "identity"})

    try:
        run()
    except Exception as exc:  # schemathesis' failure groups, assertion errors...
        return f"{operation.label}: {exc}"
    return None


def test_api_conforms_to_its_openapi(api_server: LiveServer) -> None:
    # schemathesis.pytest.from_fixture does not work with pytest 9, so each operation is
    # driven here by its own hypothesis test; every operation's failure is reported.
    schema = schemathesis.openapi.from_url(api_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert {"POST /users", "GET /users/{user_id}/orders", "PATCH /products/{product_id}", "POST /orders"} <= labels
    failures = [failure for operation in operations if (failure := _exercise(operation)) is not None]
    assert not failures, "\n\n".join(failures)
