"""schemathesis against the OpenAPI of the app the shipped plugins build, on SQLite and on
PostgreSQL, as ``st run --checks all --mode all`` would: every check schemathesis has, valid and
invalid data, per operation (schema examples, coverage cases, fuzzing) and stateful (sequences
of calls following the OpenAPI links). Nothing may be found: no 5xx, every response (status,
content type, headers, body, the ``Allow`` of a 405) as documented, every request the schema
allows accepted and every one it forbids rejected."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastplug.core.testing import LiveServer, require_service
from tests.conftest import PG_HOST, PG_PORT, _pg_admin

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis.errors import Flaky  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import CHECKS, is_check_class, load_all_checks  # noqa: E402
from schemathesis.core.failures import Failure, FailureGroup  # noqa: E402
from schemathesis.generation.hypothesis.builder import (  # noqa: E402
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)

PLUGINS = ["health", "metrics", "compression", "db", "cache", "tasks", "users", "products", "orders"]
HEADERS = {"Accept-Encoding": "identity"}
MAX_EXAMPLES = 80  # fuzzed cases per operation, on top of its schema examples and coverage cases
STATEFUL_EXAMPLES = 60  # scenarios
STATEFUL_STEPS = 6  # calls per scenario at most
BOUNDED: dict[str, Any] = {  # deterministic, bounded, no example database
    "deadline": None,
    "suppress_health_check": list(HealthCheck),
    "derandomize": True,
    "database": None,
}

load_all_checks()
ALL_CHECKS = [check for check in CHECKS.get_all() if not is_check_class(check)]
"""Every check schemathesis registers, what ``--checks all`` enables."""


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


def _schema(server: LiveServer) -> Any:
    """The app's schema, configured as ``--checks all --mode all``."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    schema.config.checks.update(included_check_names=["all"])
    schema.config.generation.update(modes=list(GenerationMode))
    for phase in ("coverage", "fuzzing", "stateful"):
        assert set(schema.config.generation_for(phase=phase).modes) == set(GenerationMode), phase
    return schema


def _exercise(schema: Any, operation: Any) -> str | None:
    """Schema examples, coverage cases (unsupported methods, boundaries, each constraint broken)
    and fuzzed cases in both modes against one operation; the first failure, described, or None."""

    @settings(max_examples=MAX_EXAMPLES, phases=[Phase.explicit, Phase.generate, Phase.shrink], **BOUNDED)
    def run(case: Any) -> None:
        case.call_and_validate(checks=ALL_CHECKS, headers=HEADERS)

    modes = [HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE, HypothesisTestMode.FUZZING]
    test = create_test(
        operation=operation, test_func=run, config=HypothesisTestConfig(project=schema.config, modes=modes)
    )
    try:
        test()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis' failure groups, assertion errors...
        return f"{operation.label}: {exc}"
    return None


def test_every_check_is_function_based() -> None:
    # class-based checks (after_run) would need their own driver here: fail loudly when one appears
    assert len(ALL_CHECKS) == len(CHECKS.get_all())
    names = {check.__name__ for check in ALL_CHECKS}
    assert {"unsupported_method", "positive_data_acceptance", "negative_data_rejection", "use_after_free"} <= names


def test_each_operation_conforms_to_its_openapi(api_server: LiveServer) -> None:
    # schemathesis.pytest.from_fixture does not work with pytest 9, so each operation is
    # driven here by its own hypothesis test; every operation's failure is reported.
    schema = _schema(api_server)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert {"POST /users", "GET /users/{user_id}/orders", "PATCH /products/{product_id}", "POST /orders"} <= labels
    failures = [failure for operation in operations if (failure := _exercise(schema, operation)) is not None]
    assert not failures, "\n\n".join(failures)


def test_stateful_sequences_conform(api_server: LiveServer) -> None:
    """Create, read and change through the links: ids come from real answers, so the 2xx paths
    of reads and updates are reached, and a resource just created must be found
    (``ensure_resource_availability``, ``use_after_free``)."""
    schema = _schema(api_server)
    seen: set[tuple[str, int]] = set()
    failures: list[str] = []
    scenarios = 0

    class Shop(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": HEADERS}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            seen.add((case.operation.label, response.status_code))

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            # failures are collected, not raised: a replay against a server whose state moved on
            # (the email now taken...) cannot reproduce a scenario, so hypothesis could not shrink it
            try:
                case.validate_response(
                    response,
                    checks=ALL_CHECKS,
                    headers=HEADERS,
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )
            except (Failure, FailureGroup) as exc:
                failures.append(f"{case.operation.label}: {exc}")

    bounded = settings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, phases=[Phase.generate], **BOUNDED
    )
    for _ in range(5):  # rounds, until enough scenarios ran
        with contextlib.suppress(Flaky):  # the server's state moved on between draws: this round ends
            Shop.run(settings=bounded)  # hypothesis' run_state_machine_as_test, with schemathesis' reporting
        if scenarios >= STATEFUL_EXAMPLES or failures:
            break
    assert not failures, "\n\n".join(failures)
    # the links were followed with ids from real answers
    assert {("GET /users/{user_id}", 200), ("GET /products/{product_id}", 200)} <= seen, sorted(seen)


def test_links_are_declared(api_server: LiveServer) -> None:
    paths = httpx.get(api_server.url + "/openapi.json").json()["paths"]
    created = {
        "/users": ("GetUser", "get_user", "user_id", "$response.body#/id"),
        "/products": ("GetProduct", "get_product", "product_id", "$response.body#/id"),
        "/orders": ("GetOrder", "get_order", "order_id", "$response.body#/order_id"),
    }
    for path, (name, operation_id, parameter, expression) in created.items():
        link = paths[path]["post"]["responses"]["201"]["links"][name]
        assert (link["operationId"], link["parameters"]) == (operation_id, {parameter: expression})
        assert "Location" in paths[path]["post"]["responses"]["201"]["headers"]
        assert "413" in paths[path]["post"]["responses"]
    operation_ids = {op["operationId"] for methods in paths.values() for op in methods.values()}
    assert {"get_user", "get_product", "update_product", "get_order", "list_user_orders"} <= operation_ids


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/users", "GET, POST"),
        ("OPTIONS", "/products", "GET, POST"),
        ("PUT", "/products/1", "GET, PATCH"),
        ("POST", "/users/1/orders", "GET"),
    ],
)
def test_a_405_allows_every_method_of_the_path(api_server: LiveServer, method: str, path: str, allow: str) -> None:
    answer = httpx.request(method, api_server.url + path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.json() == {"detail": "Method Not Allowed"}


def test_edges_the_schema_states(api_server: LiveServer) -> None:
    """Inputs at the edge of what the schema states: accepted or rejected as it says."""
    with httpx.Client(base_url=api_server.url, timeout=10) as client:
        whole = client.post(
            "/products", json={"sku": "EDGE-1", "name": "n", "category": "c", "price": -0.0, "stock": 3.0}
        )
        assert whole.status_code == 201, whole.text
        assert (whole.json()["price"], whole.json()["stock"]) == ("0.00", 3)  # JSON's 3.0 is the integer 3
        assert whole.headers["location"] == f"/products/{whole.json()['id']}"
        for price in (0.001, 99999999.999, "1.234", "12.50\n"):
            body = {"sku": "EDGE-2", "name": "n", "category": "c", "price": price}
            assert client.post("/products", json=body).status_code == 422, price
        assert (
            client.post("/users", json={"email": "a@b.test", "name": "x"}).status_code == 201
        )  # the pattern allows it
        for email in ("a" * 65 + "@example.com", "a..b@example.com", "é@example.com", "a@example.c0m"):
            assert client.post("/users", json={"email": email, "name": "x"}).status_code == 422, email
        valid_unknown = {"user_id": 2**31 - 1, "items": [{"product_id": 1, "quantity": 1.0}]}
        missing = client.post("/orders", json=valid_unknown)  # valid by the schema: not a 422
        assert missing.status_code == 404
        assert missing.json()["detail"][0]["loc"] == ["body", "user_id"]
