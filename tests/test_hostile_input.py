"""Bodies a client may send on purpose: never a 500, never echoed whole, never logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fastplug.core.app import create_app

SHIPPED = Path(__file__).resolve().parents[1] / "settings.toml"
NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = tmp_path / "settings.toml"
    settings.write_text(SHIPPED.read_text())  # the embedded default: SQLite beside it
    with TestClient(create_app(settings, "development")) as client:
        yield client  # type: ignore[misc]


def _post(client: TestClient, path: str, body: str):  # type: ignore[no-untyped-def]
    return client.post(
        path, content=body.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize("number", NUMBERS)
@pytest.mark.parametrize("path", ["/users", "/orders", "/products"])
def test_non_finite_numbers_are_422(client: TestClient, path: str, number: str) -> None:
    body = {
        "/users": f'{{"email": {number}, "name": "x"}}',
        "/orders": f'{{"user_id": {number}, "items": [{{"product_id": 1, "quantity": {number}}}]}}',
        "/products": f'{{"sku": "S-1", "name": "n", "category": "c", "price": {number}}}',
    }[path]
    answer = _post(client, path, body)
    assert answer.status_code == 422, answer.text
    assert isinstance(answer.json()["detail"], list)


def test_a_lone_surrogate_is_422(client: TestClient) -> None:
    answer = _post(client, "/users", '{"email": "x\\ud800y@example.com", "name": "\\udfff"}')
    assert answer.status_code == 422, answer.text
    answer.json()


def test_a_huge_input_is_not_echoed_or_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    canary = "zq" * 500_000  # 1 MB
    caplog.set_level(logging.DEBUG)
    answers = [
        _post(client, "/users", f'{{"email": "{canary}", "name": "x"}}'),
        _post(client, "/orders", f'{{"note": "{canary}", "{canary}": 1}}'),  # a whole object, and a huge key
    ]
    for answer in answers:
        assert answer.status_code == 422
        assert len(answer.content) < 4000, len(answer.content)
    assert "zqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzqzq" not in caplog.text
