"""Plugin routes validate response models into dicts (``FastplugRoute``) and send exactly
FastAPI's bytes: model shapes and options, errors, OpenAPI, and the domain plugins' routes."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_serializer, field_validator, model_validator

import fastplug.core.routes
from fastplug.core.response_model import FastplugRoute, mirrored_field


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Tag(BaseModel):
    name: str = Field(alias="tagName")
    weight: float = 1.0


class Thing(BaseModel):
    model_config = ConfigDict(populate_by_name=True, from_attributes=True)
    id: int
    when: dt.datetime
    price: decimal.Decimal
    color: Color
    tags: list[Tag] = []
    note: str | None = None
    uid: uuid.UUID | None = None
    day: dt.date | None = None
    extra: dict[str, Any] = {}
    ratio: float = 0.5
    code: str = Field(default="x", serialization_alias="Code", max_length=8)

    @field_validator("id")
    @classmethod
    def positive(cls, value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value


class Node(BaseModel):
    name: str
    children: list[Node] = []


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    a: str
    b: int = 0


GOOD = {
    "id": 1,
    "when": "2024-01-02T03:04:05Z",
    "price": "1.50",
    "color": "red",
    "tags": [{"tagName": "a", "weight": 2}],
    "uid": str(uuid.UUID(int=5)),
    "day": "2024-02-29",
}
COERCED = {
    "id": "7",
    "when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    "price": 3,
    "color": Color.blue,
    "note": 'é\u2028\x01"',
    "extra": {"a": [1, 2.5, None, 1e16, 1e-7]},
    "ratio": 2,
    "code": "yz",
}
THINGS: dict[str, Any] = {
    "good": GOOD,
    "coerced": COERCED,
    "minimal": {"id": 0, "when": 0, "price": 0.1, "color": "blue"},
    "extra keys dropped": {**GOOD, "password": "no"},
    "a model instance": Thing.model_validate(GOOD),
    "an object with attributes": SimpleNamespace(**{**GOOD, "tags": []}),
    "invalid: validator": {**GOOD, "id": -1},
    "invalid: missing": {"id": 1},
    "invalid: alias not used": {**GOOD, "tags": [{"name": "a"}]},
    "invalid: too long": {**GOOD, "code": "123456789"},
}
OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "exclude_none": {"response_model_exclude_none": True},
    "exclude_defaults": {"response_model_exclude_defaults": True},
    "exclude_unset": {"response_model_exclude_unset": True},
    "not by alias": {"response_model_by_alias": False},
    "exclude": {"response_model_exclude": {"note", "extra"}},
    "include": {"response_model_include": {"id", "price"}},
}


def _apps(declare: Callable[[FastAPI], None]) -> tuple[FastAPI, FastAPI]:
    """The same routes on FastAPI's ``APIRoute`` and on ``FastplugRoute``."""
    plain, fast = FastAPI(), FastAPI()
    fast.router.route_class = FastplugRoute
    declare(plain)
    declare(fast)
    return plain, fast


def _same(plain: FastAPI, fast: FastAPI, *paths: str) -> None:
    with (
        TestClient(plain, raise_server_exceptions=False) as a,
        TestClient(fast, raise_server_exceptions=False) as b,
    ):
        for path in paths:
            one, other = a.get(path), b.get(path)
            assert (one.status_code, one.content) == (other.status_code, other.content), path
            assert one.headers == other.headers, path


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("case", THINGS)
def test_same_bytes_as_fastapi(case: str, option: str) -> None:
    value = THINGS[case]

    def declare(app: FastAPI) -> None:
        @app.get("/one", response_model=Thing, **OPTIONS[option])
        async def one() -> Any:
            return value

        @app.get("/many", response_model=list[Thing], **OPTIONS[option])
        async def many() -> Any:
            return [value, value]

        @app.get("/keyed", response_model=dict[str, Thing | None], **OPTIONS[option])
        async def keyed() -> Any:
            return {"a": value, "b": None}

    _same(*_apps(declare), "/one", "/many", "/keyed")


def test_nested_recursive_and_strict_models() -> None:
    tree = {"name": "root", "children": [{"name": "a", "children": [{"name": "b"}]}]}

    def declare(app: FastAPI) -> None:
        @app.get("/tree", response_model=Node)
        async def get_tree() -> Any:
            return tree

        @app.get("/strict", response_model=list[Strict])
        async def strict() -> Any:
            return [{"a": "  padded  ", "b": "3"}]

        @app.get("/forbidden", response_model=Strict)
        async def forbidden() -> Any:
            return {"a": "x", "c": 1}

        @app.get("/sync", response_model=Node)
        def sync() -> Any:
            return tree

    plain, fast = _apps(declare)
    _same(plain, fast, "/tree", "/strict", "/forbidden", "/sync")
    assert all(mirrored_field(r) is not None for r in fast.routes if isinstance(r, APIRoute))


class Validated(BaseModel):
    a: int

    @model_validator(mode="after")
    def check(self) -> Validated:
        self.a += 1
        return self


class Computed(BaseModel):
    a: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return self.a * 2


class Serialized(BaseModel):
    a: int

    @field_serializer("a")
    def as_text(self, value: int) -> str:
        return f"#{value}"


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int


class Cat(BaseModel):
    meow: int


class Dog(BaseModel):
    woof: int


UNMIRRORED: dict[str, tuple[Any, Any]] = {
    "model validator": (Validated, {"a": 1}),
    "computed field": (Computed, {"a": 2}),
    "field serializer": (Serialized, {"a": 3}),
    "extra allow": (Open, {"a": 1, "b": 2}),
    "union of models": (Cat | Dog, {"woof": 1}),
}


@pytest.mark.parametrize("case", UNMIRRORED)
def test_shapes_the_mirror_cannot_copy_take_fastapis_path(case: str) -> None:
    model, value = UNMIRRORED[case]

    def declare(app: FastAPI) -> None:
        @app.get("/x", response_model=model)
        async def x() -> Any:
            return value

        @app.get("/unset", response_model=Thing, response_model_exclude_unset=True)
        async def unset() -> Any:
            return GOOD

    plain, fast = _apps(declare)
    assert [mirrored_field(r) for r in fast.routes if isinstance(r, APIRoute)] == [None, None]
    _same(plain, fast, "/x", "/unset")


def test_openapi_is_unchanged() -> None:
    def declare(app: FastAPI) -> None:
        @app.get("/many", response_model=list[Thing], response_model_exclude_none=True)
        async def many() -> Any:
            return [GOOD]

        @app.get("/tree/{name}", response_model=Node, responses={404: {"description": "none"}})
        async def tree(name: str) -> Any:
            return {"name": name}

    plain, fast = _apps(declare)
    assert plain.openapi() == fast.openapi()


def test_the_domain_plugins_answer_the_same(
    fastplug_app_factory: Callable[..., FastAPI], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every GET of the users, products and orders plugins, on FastplugRoute and on APIRoute."""
    options = {
        "plugins": ["health", "db", "tasks", "users", "products", "orders"],
        "db": {"url": db_url, "auto_migrate": True},
        "tasks": {"broker_url": "memory://", "embedded_worker": False},
    }
    fast = fastplug_app_factory(**options)
    assert all(type(r) is FastplugRoute for r in fast.routes if isinstance(r, APIRoute))
    monkeypatch.setattr(fastplug.core.routes, "FastplugRoute", APIRoute)
    plain = fastplug_app_factory(**options)
    assert all(type(r) is APIRoute for r in plain.routes if isinstance(r, APIRoute))
    with TestClient(fast) as client:
        user = client.post("/users", json={"email": "ada@example.com", "name": "Ada"}).json()
        product = client.post(
            "/products", json={"sku": "SKU-1", "name": "Lamp", "price": "12.50", "category": "lighting", "stock": 5}
        )
        assert product.status_code == 201, product.text
        order = client.post(
            "/orders", json={"user_id": user["id"], "items": [{"product_id": product.json()["id"], "quantity": 2}]}
        )
        assert order.status_code == 201, order.text
    paths = [
        "/users",
        f"/users/{user['id']}",
        f"/users/{user['id']}/orders",
        "/users/999999",
        "/users/x",
        "/products",
        f"/products/{product.json()['id']}",
        "/products?limit=0",
        f"/orders/{order.json()['order_id']}",
        "/orders/999999",
        "/health/live",
        "/openapi.json",
    ]
    _same(plain, fast, *paths)
