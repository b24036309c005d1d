"""The users plugin on SQLite and the real PostgreSQL: create, read, keyset pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastplug.core.paging import encode_cursor
from fastplug.core.testing import LiveServer

Make = Callable[..., FastAPI]
INT32_MAX = 2**31 - 1


@pytest.fixture
def make(fastplug_app_factory: Make, db_url: str) -> Make:
    """An app with the users plugin on this test's own database (migrated at startup)."""

    def build(**users: Any) -> FastAPI:
        return fastplug_app_factory(
            plugins=["health", "db", "users"], db={"url": db_url, "auto_migrate": True}, users=users
        )

    return build


@pytest.fixture
def client(make: Make) -> Iterator[TestClient]:
    with TestClient(make(page_size=3, max_page_size=5)) as client:
        yield client


def create(client: TestClient | httpx.Client, email: str, name: str = "someone") -> httpx.Response:
    return client.post("/users", json={"email": email, "name": name})


def walk(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Every page of ``GET /users`` from the first, following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        answer = client.get("/users", params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def test_create_then_get(client: TestClient) -> None:
    created = create(client, "Ada.Lovelace@Example.COM", "Ada Lovelace")
    assert created.status_code == 201
    body = created.json()
    assert body["email"] == "ada.lovelace@example.com"  # stored lower-cased
    assert body["name"] == "Ada Lovelace" and body["id"] >= 1
    assert body["created_at"].endswith(("Z", "+00:00"))
    read = client.get(f"/users/{body['id']}")
    assert read.status_code == 200 and read.json() == body
    assert read.headers["content-type"] == "application/json"


@pytest.mark.parametrize("again", ["ada@example.com", "ADA@EXAMPLE.COM", "Ada@example.com"])
def test_duplicate_email_is_409_whatever_the_case(client: TestClient, again: str) -> None:
    assert create(client, "ada@Example.com").status_code == 201
    duplicate = create(client, again)
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "a user with this email already exists"}
    assert [u["email"] for u in walk(client)] == ["ada@example.com"]
    assert create(client, "grace@example.com").status_code == 201  # the session is usable again


def test_concurrent_duplicates_get_one_201_and_409s(make: Make) -> None:
    with LiveServer(make()) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: create(http, ("race@example.com", "RACE@Example.COM")[i % 2]), range(8)))
        listed = http.get("/users").json()["items"]
    assert sorted(a.status_code for a in answers) == [201] + [409] * 7, [(a.status_code, a.text) for a in answers]
    assert [u["email"] for u in listed] == ["race@example.com"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "name": "x"},
        {"email": "a@b", "name": "x"},
        {"email": "a" * 250 + "@example.com", "name": "x"},
        {"email": "ada@example.com"},
        {"email": "ada@example.com", "name": ""},
        {"email": "ada@example.com", "name": "x" * 201},
        {"email": "ada@example.com", "name": "nul\x00byte"},
        {"email": "ada@example.com", "name": "x", "admin": True},
        {"email": None, "name": "x"},
        {"email": "ada@example.com", "name": 5},
    ],
)
def test_invalid_bodies_are_422(client: TestClient, body: dict[str, Any]) -> None:
    answer = client.post("/users", json=body)
    assert answer.status_code == 422
    assert isinstance(answer.json()["detail"], list)
    assert client.get("/users").json() == {"items": [], "next_cursor": None}


def test_longest_name_fits_the_column(client: TestClient) -> None:
    assert create(client, "long@example.com", "é" * 200).json()["name"] == "é" * 200


@pytest.mark.parametrize("user_id", ["1", "999", str(INT32_MAX)])
def test_missing_user_is_404(client: TestClient, user_id: str) -> None:
    answer = client.get(f"/users/{user_id}")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "user not found"}


@pytest.mark.parametrize("user_id", ["0", "-1", str(INT32_MAX + 1), "99999999999999999999", "abc"])
def test_out_of_range_ids_are_422(client: TestClient, user_id: str) -> None:
    assert client.get(f"/users/{user_id}").status_code == 422


def test_pages_walk_every_user_once_in_id_order(client: TestClient) -> None:
    ids = [create(client, f"user{i}@example.com").json()["id"] for i in range(11)]
    first = client.get("/users").json()
    assert [u["id"] for u in first["items"]] == ids[:3]  # page_size
    assert [u["id"] for u in walk(client)] == ids
    assert [u["id"] for u in walk(client, limit=5)] == ids
    assert [u["id"] for u in walk(client, limit=1)] == ids


def test_exact_multiple_of_the_limit_ends_with_a_null_cursor(client: TestClient) -> None:
    for i in range(4):
        create(client, f"u{i}@example.com")
    second = client.get("/users", params={"limit": 2, "cursor": client.get("/users?limit=2").json()["next_cursor"]})
    assert len(second.json()["items"]) == 2 and second.json()["next_cursor"] is None
    assert client.get("/users").json()["next_cursor"] is not None


def test_pages_are_stable_under_inserts(client: TestClient) -> None:
    ids = [create(client, f"old{i}@example.com").json()["id"] for i in range(5)]
    first = client.get("/users", params={"limit": 2}).json()
    new = [create(client, f"new{i}@example.com").json()["id"] for i in range(3)]
    seen = [u["id"] for u in first["items"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = client.get("/users", params={"limit": 2, "cursor": cursor}).json()
        seen.extend(u["id"] for u in page["items"])
        cursor = page["next_cursor"]
    assert seen == ids + new


def test_empty_table_is_one_empty_page(client: TestClient) -> None:
    assert client.get("/users").json() == {"items": [], "next_cursor": None}


def test_cursor_past_every_id_is_an_empty_last_page(client: TestClient) -> None:
    create(client, "ada@example.com")
    for cursor in (encode_cursor(INT32_MAX), "______"):  # "______": 2^32 - 1, past int32
        assert client.get("/users", params={"cursor": cursor}).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "abc"},
        {"cursor": "not a cursor"},
        {"cursor": "!!!!!!"},
        {"cursor": "AAAAAAA"},
        {"cursor": ""},
        {"limit": 0},
        {"limit": 6},  # max_page_size
        {"limit": -1},
        {"limit": "ten"},
    ],
)
def test_bad_page_parameters_are_422(client: TestClient, params: dict[str, Any]) -> None:
    answer = client.get("/users", params=params)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][0] == "query"


def test_openapi_documents_models_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]

    def ref(operation: dict[str, Any], status: str) -> str:
        return str(operation["responses"][status]["content"]["application/json"]["schema"]["$ref"])

    create_op, get_op, list_op = paths["/users"]["post"], paths["/users/{user_id}"]["get"], paths["/users"]["get"]
    assert ref(create_op, "201").endswith("/UserOut") and ref(create_op, "409").endswith("/ErrorOut")
    assert ref(create_op, "400").endswith("/ErrorOut")  # FastAPI's answer to a body that is not JSON
    assert ref(get_op, "200").endswith("/UserOut") and ref(get_op, "404").endswith("/ErrorOut")
    assert ref(list_op, "200").endswith("/UserPage") and "422" in list_op["responses"]
    assert {create_op["tags"][0], get_op["tags"][0], list_op["tags"][0]} == {"users"}
    limit = next(p for p in list_op["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 5, 3)
    user_id = get_op["parameters"][0]["schema"]
    assert (user_id["minimum"], user_id["maximum"]) == (1, INT32_MAX)
    assert spec["components"]["schemas"]["ErrorOut"]["required"] == ["detail"]
    assert spec["components"]["schemas"]["UserIn"]["properties"]["email"]["format"] == "email"
