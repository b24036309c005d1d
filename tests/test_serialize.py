"""core.serialize: one cached TypeAdapter per type, bytes straight from pydantic's serializer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from fastplug.core.serialize import JsonBytes, serializer, trusted


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    price: Decimal
    created_at: datetime


class PageOut(BaseModel):
    items: list[ItemOut]
    next_cursor: str | None = None


@dataclass
class Row:
    """What an ORM row looks like to the serializer: attributes, not a mapping."""

    id: int
    name: str
    price: Decimal
    created_at: datetime
    secret: str = "never serialized"


ROWS = [Row(i, f"item {i}", Decimal("9.50"), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) for i in range(1, 4)]


def test_serializer_is_cached_per_type_and_options() -> None:
    assert serializer(PageOut) is serializer(PageOut)
    assert serializer(PageOut) is not serializer(PageOut, exclude_none=True)


def test_from_attributes_builds_the_models_and_drops_other_attributes() -> None:
    body = serializer(PageOut).dump({"items": ROWS, "next_cursor": None}, from_attributes=True)
    data = json.loads(body)
    assert data["next_cursor"] is None
    assert data["items"][0] == {"id": 1, "name": "item 1", "price": "9.50", "created_at": "2026-01-02T03:04:05Z"}
    assert all("secret" not in item for item in data["items"])


def test_dump_of_models_matches_pydantic() -> None:
    page = PageOut.model_validate({"items": ROWS}, from_attributes=True)
    assert serializer(PageOut).dump(page) == page.model_dump_json().encode()
    assert (
        serializer(list[ItemOut]).dump(page.items)
        == json.dumps([json.loads(item.model_dump_json()) for item in page.items], separators=(",", ":")).encode()
    )


def test_exclude_none() -> None:
    body = serializer(PageOut, exclude_none=True).dump(PageOut(items=[]))
    assert body == b'{"items":[]}'


def test_response_is_sent_as_is_and_documented_by_response_model() -> None:
    app = FastAPI()

    @app.get("/items", response_model=PageOut)
    async def items() -> JsonBytes:
        return serializer(PageOut).response({"items": ROWS}, from_attributes=True, headers={"x-a": "1"})

    @app.post("/items", response_model=ItemOut, status_code=201)
    async def create() -> JsonBytes:
        return serializer(ItemOut).response(ROWS[0], from_attributes=True, status_code=201)

    client = TestClient(app)
    response = client.get("/items")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-a"] == "1"
    assert int(response.headers["content-length"]) == len(response.content)
    assert [item["id"] for item in response.json()["items"]] == [1, 2, 3]
    assert client.post("/items").status_code == 201

    schema = app.openapi()["paths"]["/items"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/PageOut"}


def test_records_zip_rows_by_position_and_validate_like_attributes() -> None:
    from fastplug.core.serialize import records

    keys = ("id", "name", "price", "created_at")
    rows = [(r.id, r.name, r.price, r.created_at) for r in ROWS]
    as_dicts = records(rows, keys)
    assert as_dicts[0] == {"id": 1, "name": "item 1", "price": Decimal("9.50"), "created_at": ROWS[0].created_at}
    page = serializer(PageOut)
    assert page.dump({"items": as_dicts}, from_attributes=True) == page.dump({"items": ROWS}, from_attributes=True)


def test_trusted_sends_the_value_as_json_without_validating_it() -> None:
    app = FastAPI()

    @app.get("/items", response_model=list[ItemOut])
    async def items() -> JsonBytes:
        return trusted([{"id": "not an int", "name": "é"}], headers={"x-trusted": "1"})

    with TestClient(app) as client:
        answer = client.get("/items")
    assert answer.content == '[{"id":"not an int","name":"é"}]'.encode()
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-trusted"] == "1"
    assert (
        app.openapi()["paths"]["/items"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["type"]
        == "array"
    )
