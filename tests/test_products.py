"""The products plugin on SQLite and the real PostgreSQL: writes, keyset pages by category,
and its cached reads (memory and the real Redis), invalidated once writes commit."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis as redis_sync
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fastplug.core.paging import encode_cursor
from fastplug.core.runtime import Runtime
from fastplug.core.testing import require_service
from fastplug.plugins.cache.service import Cache
from fastplug.plugins.products.models import Product

Make = Callable[..., FastAPI]
INT32_MAX = 2**31 - 1
REDIS_URL = "redis://127.0.0.1:6379/0"
MUG = {"sku": "MUG-1", "name": "Blue mug", "category": "kitchen", "price": "12.50", "stock": 3}


@pytest.fixture
def make(fastplug_app_factory: Make, db_url: str) -> Make:
    """An app with the products plugin on this test's own database, cached in memory unless
    ``plugins``/``cache`` say otherwise."""

    def build(
        plugins: tuple[str, ...] = ("health", "db", "cache", "products"),
        products: dict[str, Any] | None = None,
        **rest: Any,
    ) -> FastAPI:
        return fastplug_app_factory(
            plugins=list(plugins),
            db={"url": db_url, "auto_migrate": True},
            products={"page_size": 3, "max_page_size": 5, **(products or {})},
            **rest,
        )

    return build


@pytest.fixture
def client(make: Make) -> Iterator[TestClient]:
    with TestClient(make()) as client:
        yield client


def product(n: int, category: str = "kitchen", **fields: Any) -> dict[str, Any]:
    return {"sku": f"SKU-{n}", "name": f"product {n}", "category": category, "price": n, "stock": n, **fields}


def add(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/products", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def walk(client: TestClient, **params: Any) -> list[int]:
    """The ids of every page of ``GET /products`` from the first, following ``next_cursor``."""
    ids: list[int] = []
    cursor = None
    for _ in range(100):
        answer = client.get("/products", params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        ids.extend(p["id"] for p in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


# --- writes and reads ---------------------------------------------------------------------


def test_create_then_get(client: TestClient) -> None:
    created = add(client, {**MUG, "description": "holds\ntea"})
    assert {k: created[k] for k in MUG} == MUG
    assert created["description"] == "holds\ntea" and created["id"] >= 1
    assert created["created_at"].endswith(("Z", "+00:00")) and created["updated_at"].endswith(("Z", "+00:00"))
    assert client.get(f"/products/{created['id']}").json() == created


@pytest.mark.parametrize(
    ("given", "shown"), [(12, "12.00"), (0.5, "0.50"), ("7.1", "7.10"), ("99999999.99", "99999999.99")]
)
def test_prices_are_shown_with_two_decimals(client: TestClient, given: Any, shown: str) -> None:
    created = add(client, {**MUG, "price": given})
    assert created["price"] == shown
    assert client.get(f"/products/{created['id']}").json()["price"] == shown


def test_defaults(client: TestClient) -> None:
    created = add(client, {k: v for k, v in MUG.items() if k != "stock"})
    assert (created["stock"], created["description"]) == (0, "")


def test_duplicate_sku_is_409(client: TestClient) -> None:
    add(client, MUG)
    duplicate = client.post("/products", json={**MUG, "name": "another"})
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "a product with this SKU already exists"}
    assert len(walk(client)) == 1
    add(client, {**MUG, "sku": "MUG-2"})  # the session is usable again


@pytest.mark.parametrize(
    "change",
    [
        {"price": -1},
        {"price": "-1"},
        {"price": "1.234"},
        {"price": 1.234},
        {"price": 10**8},
        {"price": "100000000"},
        {"price": "12,50"},
        {"price": "NaN"},
        {"price": True},
        {"price": "1e2"},
        {"price": " 1"},
        {"stock": -1},
        {"stock": INT32_MAX + 1},
        {"stock": 1.5},
        {"stock": "3"},
        {"stock": True},
        {"sku": ""},
        {"sku": "x" * 33},
        {"name": "x" * 201},
        {"name": "tab\there"},
        {"category": "c" * 51},
        {"description": "nul\x00byte"},
        {"description": "x" * 10_001},
        {"colour": "blue"},
    ],
)
def test_invalid_bodies_are_422(client: TestClient, change: dict[str, Any]) -> None:
    answer = client.post("/products", json={**MUG, **change})
    assert answer.status_code == 422, answer.text
    assert walk(client) == []
    add(client, MUG)
    patched = client.patch("/products/1", json=change)
    assert patched.status_code == 422, patched.text


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    answer = client.post("/products", content=b"\x80\x81", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and isinstance(answer.json()["detail"], str)  # ErrorOut, as documented


def test_largest_values_fit_the_columns(client: TestClient) -> None:
    biggest = {"sku": "s" * 32, "name": "n" * 200, "category": "c" * 50, "price": "99999999.99", "stock": INT32_MAX}
    created = add(client, biggest)
    assert {k: created[k] for k in biggest} == biggest


def test_patch_changes_only_the_given_fields(client: TestClient) -> None:
    created = add(client, MUG)
    patched = client.patch(f"/products/{created['id']}", json={"price": "13", "stock": 0, "description": "new"})
    assert patched.status_code == 200
    body = patched.json()
    assert (body["price"], body["stock"], body["description"]) == ("13.00", 0, "new")
    assert (body["name"], body["sku"], body["created_at"]) == (created["name"], created["sku"], created["created_at"])
    assert body["updated_at"] >= created["updated_at"]
    assert client.get(f"/products/{created['id']}").json() == body


def test_patch_with_an_empty_body_changes_nothing(client: TestClient) -> None:
    created = add(client, MUG)
    same = client.patch(f"/products/{created['id']}", json={})
    assert same.status_code == 200 and same.json() == created


@pytest.mark.parametrize("field", ["sku", "name", "description", "category", "price", "stock"])
def test_patch_null_is_422(client: TestClient, field: str) -> None:
    created = add(client, MUG)
    assert client.patch(f"/products/{created['id']}", json={field: None}).status_code == 422
    assert client.get(f"/products/{created['id']}").json() == created


def test_patch_to_a_used_sku_is_409(client: TestClient) -> None:
    add(client, MUG)
    other = add(client, {**MUG, "sku": "MUG-2"})
    clash = client.patch(f"/products/{other['id']}", json={"sku": "MUG-1", "name": "renamed"})
    assert clash.status_code == 409 and clash.json() == {"detail": "a product with this SKU already exists"}
    assert client.get(f"/products/{other['id']}").json()["name"] == other["name"]


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_missing_product_is_404(client: TestClient, method: str) -> None:
    for product_id in (1, INT32_MAX):
        answer = client.request(method, f"/products/{product_id}", json={"stock": 1} if method == "PATCH" else None)
        assert answer.status_code == 404 and answer.json() == {"detail": "product not found"}
    assert client.patch("/products/1", json={}).status_code == 404


@pytest.mark.parametrize("product_id", ["0", "-1", str(INT32_MAX + 1), "abc"])
def test_out_of_range_ids_are_422(client: TestClient, product_id: str) -> None:
    assert client.get(f"/products/{product_id}").status_code == 422
    assert client.patch(f"/products/{product_id}", json={}).status_code == 422


# --- keyset pages -------------------------------------------------------------------------


def test_pages_walk_every_product_once_in_id_order(client: TestClient) -> None:
    ids = [add(client, product(n))["id"] for n in range(1, 12)]
    first = client.get("/products").json()
    assert [p["id"] for p in first["items"]] == ids[:3]  # page_size
    assert walk(client) == ids
    assert walk(client, limit=5) == ids
    assert walk(client, limit=1) == ids


def test_pages_within_a_category(client: TestClient) -> None:
    categories = ["kitchen", "garden", "kitchen", "toys", "kitchen", "garden"] * 3
    ids = [add(client, product(n, category))["id"] for n, category in enumerate(categories, 1)]
    by_category: dict[str, list[int]] = {}
    for product_id, category in zip(ids, categories, strict=True):
        by_category.setdefault(category, []).append(product_id)
    for category, expected in by_category.items():
        assert walk(client, category=category) == expected
        assert walk(client, category=category, limit=2) == expected
    assert walk(client, category="nothing here") == []


def test_pages_are_stable_under_inserts(client: TestClient) -> None:
    ids = [add(client, product(n))["id"] for n in range(1, 6)]
    first = client.get("/products", params={"limit": 2}).json()
    new = [add(client, product(n))["id"] for n in range(6, 9)]
    seen = [p["id"] for p in first["items"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = client.get("/products", params={"limit": 2, "cursor": cursor}).json()
        seen.extend(p["id"] for p in page["items"])
        cursor = page["next_cursor"]
    assert seen == ids + new


def test_cursor_past_every_id_is_an_empty_last_page(client: TestClient) -> None:
    add(client, MUG)
    for cursor in (encode_cursor(INT32_MAX), "______"):
        assert client.get("/products", params={"cursor": cursor}).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "abc"},
        {"cursor": "%%%%%%"},
        {"cursor": "AAAAAAAA"},
        {"limit": 0},
        {"limit": 6},
        {"category": ""},
        {"category": "c" * 51},
        {"category": "nul\x00"},
    ],
)
def test_bad_page_parameters_are_422(client: TestClient, params: dict[str, Any]) -> None:
    answer = client.get("/products", params=params)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][0] == "query"
    assert answer.headers["x-cache"] == "MISS"  # errors are never stored
    assert client.get("/products", params=params).headers["x-cache"] == "MISS"


# --- caching ------------------------------------------------------------------------------


def labels(client: TestClient, path: str, times: int = 2) -> list[str]:
    return [client.get(path).headers["x-cache"] for _ in range(times)]


def test_reads_are_cached_and_writes_invalidate_them(client: TestClient) -> None:
    created = add(client, MUG)
    detail, listing = f"/products/{created['id']}", "/products?category=kitchen"
    assert labels(client, detail) == ["MISS", "HIT"]
    assert labels(client, listing) == ["MISS", "HIT"]
    assert labels(client, "/products") == ["MISS", "HIT"]

    assert client.patch(detail, json={"name": "Red mug"}).status_code == 200
    after_patch = client.get(detail)
    assert after_patch.headers["x-cache"] == "MISS" and after_patch.json()["name"] == "Red mug"
    listed = client.get(listing)
    assert listed.headers["x-cache"] == "MISS" and listed.json()["items"][0]["name"] == "Red mug"
    assert labels(client, detail, 1) == ["HIT"]

    second = add(client, {**MUG, "sku": "MUG-2"})
    listed = client.get(listing)
    assert listed.headers["x-cache"] == "MISS"
    assert [p["id"] for p in listed.json()["items"]] == [created["id"], second["id"]]
    assert client.get(detail).headers["x-cache"] == "HIT"  # a new product changes the pages only


def test_failed_and_empty_writes_keep_the_cache(client: TestClient) -> None:
    created = add(client, MUG)
    detail = f"/products/{created['id']}"
    assert labels(client, detail) == ["MISS", "HIT"]
    assert client.post("/products", json=MUG).status_code == 409
    assert client.patch(detail, json={"price": -1}).status_code == 422
    assert client.patch(detail, json={}).status_code == 200
    assert labels(client, detail, 1) == ["HIT"]


def test_each_query_is_its_own_entry(client: TestClient) -> None:
    for n in range(1, 5):
        add(client, product(n))
    assert labels(client, "/products?limit=2") == ["MISS", "HIT"]
    assert labels(client, "/products?limit=3") == ["MISS", "HIT"]
    cursor = client.get("/products?limit=2").json()["next_cursor"]
    assert labels(client, f"/products?limit=2&cursor={cursor}") == ["MISS", "HIT"]


def test_invalidation_comes_after_the_commit(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the cache is invalidated, another connection already sees the new row: a reader
    refilling the cache at that moment cannot store the old one."""
    app: Any = client.app
    maker = Runtime.of(app).services.require("db.sessionmaker", async_sessionmaker)
    seen: list[list[tuple[str, str]]] = []
    invalidate = Cache.invalidate

    async def spying(self: Cache, **kwargs: Any) -> int:
        session: AsyncSession
        async with maker() as session:
            rows = (await session.execute(select(Product.sku, Product.name).order_by(Product.id))).all()
            seen.append([(sku, name) for sku, name in rows])
        return await invalidate(self, **kwargs)

    monkeypatch.setattr(Cache, "invalidate", spying)
    created = add(client, MUG)
    client.patch(f"/products/{created['id']}", json={"name": "Red mug"})
    assert seen == [[("MUG-1", "Blue mug")], [("MUG-1", "Red mug")]]


def test_a_failing_invalidation_does_not_fail_the_committed_write(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(self: Cache, **kwargs: Any) -> int:
        raise ConnectionError("cache backend down")

    created = add(client, MUG)
    monkeypatch.setattr(Cache, "invalidate", down)
    patched = client.patch(f"/products/{created['id']}", json={"stock": 9})
    assert patched.status_code == 200 and patched.json()["stock"] == 9
    assert add(client, {**MUG, "sku": "MUG-2"})["id"] > created["id"]


def test_products_work_without_the_cache_plugin(make: Make) -> None:
    with TestClient(make(plugins=("health", "db", "products"))) as client:
        created = add(client, MUG)
        patched = client.patch(f"/products/{created['id']}", json={"stock": 5})
        read = client.get(f"/products/{created['id']}")
        listed = client.get("/products")
    assert patched.status_code == 200 and read.json()["stock"] == 5
    assert [p["stock"] for p in listed.json()["items"]] == [5]
    assert "x-cache" not in read.headers and "x-cache" not in listed.headers


def test_cache_ttl_comes_from_the_settings(make: Make) -> None:
    with TestClient(make(products={"cache_ttl": 17})) as client:
        created = add(client, MUG)
        assert client.get(f"/products/{created['id']}").headers["cache-control"] == "public, max-age=17"
        assert client.get("/products").headers["cache-control"] == "public, max-age=17"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the real Redis; its keys are deleted afterwards."""
    require_service("Redis", "127.0.0.1", 6379)
    name = f"fptest:products:{uuid.uuid4().hex[:10]}"
    yield name
    client = redis_sync.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        for key in client.scan_iter(f"{name}*"):
            client.delete(key)
    finally:
        client.close()


def test_redis_backend(make: Make, redis_prefix: str) -> None:
    app = make(
        plugins=("health", "db", "redis", "cache", "products"),
        redis={"url": REDIS_URL},
        cache={"backend": "redis", "key_prefix": redis_prefix, "op_timeout": 5},
    )
    with TestClient(app) as client:
        created = add(client, MUG)
        detail = f"/products/{created['id']}"
        assert labels(client, detail) == ["MISS", "HIT"]
        assert labels(client, "/products") == ["MISS", "HIT"]
        stored = redis_sync.Redis.from_url(REDIS_URL)
        try:
            assert any(stored.scan_iter(f"{redis_prefix}*"))
        finally:
            stored.close()
        assert client.patch(detail, json={"name": "Red mug"}).status_code == 200
        read = client.get(detail)
        listed = client.get("/products")
        assert read.headers["x-cache"] == "MISS" and read.json()["name"] == "Red mug"
        assert listed.headers["x-cache"] == "MISS" and listed.json()["items"][0]["name"] == "Red mug"
        add(client, {**MUG, "sku": "MUG-2"})
        assert len(client.get("/products").json()["items"]) == 2


def test_redis_outage_does_not_fail_writes(make: Make, private_redis: Callable[[], subprocess.Popen[bytes]]) -> None:
    server = private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    app = make(
        plugins=("health", "db", "redis", "cache", "products"),
        redis={"url": url},
        cache={"backend": "redis", "key_prefix": "fptest:products"},  # a private server: nothing to clean
    )
    with TestClient(app) as client:
        created = add(client, MUG)
        server.kill()
        server.wait()
        patched = client.patch(f"/products/{created['id']}", json={"stock": 7})
        read = client.get(f"/products/{created['id']}")
    assert patched.status_code == 200 and patched.json()["stock"] == 7
    assert read.status_code == 200 and read.json()["stock"] == 7 and read.headers["x-cache"] == "BYPASS"


# --- fine-grained invalidation: per-product tags ---------------------------------------------

SHOP = ("health", "db", "cache", "tasks", "users", "products", "orders")


def test_an_order_drops_only_the_answers_showing_its_products(make: Make) -> None:
    with TestClient(make(plugins=SHOP, products={"page_size": 2})) as client:
        user = client.post("/users", json={"email": "o@example.com", "name": "O"}).json()["id"]
        a, b, c = (add(client, product(n))["id"] for n in (10, 11, 12))  # pages: [a, b], [c]
        first_page = "/products"
        second_page = client.get(first_page).json()["next_cursor"]
        second_page = f"/products?cursor={second_page}"
        for path in (f"/products/{a}", f"/products/{b}", first_page, second_page):
            assert labels(client, path)[-1] == "HIT"
        placed = client.post("/orders", json={"user_id": user, "items": [{"product_id": a, "quantity": 4}]})
        assert placed.status_code == 201, placed.text
        other = client.get(f"/products/{b}")
        ordered = client.get(f"/products/{a}")
        listed = client.get(first_page)
        untouched = client.get(second_page)  # shows only c
    assert other.headers["x-cache"] == "HIT" and other.json()["stock"] == 11
    assert ordered.headers["x-cache"] == "MISS" and ordered.json()["stock"] == 6
    assert listed.headers["x-cache"] == "MISS" and listed.json()["items"][0]["stock"] == 6
    assert untouched.headers["x-cache"] == "HIT" and [p["id"] for p in untouched.json()["items"]] == [c]


def test_a_patch_drops_its_product_and_a_category_change_every_page(client: TestClient) -> None:
    a, b = (add(client, product(n))["id"] for n in (1, 2))
    garden = "/products?category=garden"
    for path in (f"/products/{a}", f"/products/{b}", garden):
        labels(client, path)
    client.patch(f"/products/{a}", json={"name": "renamed"})
    assert [client.get(f"/products/{b}").headers["x-cache"], client.get(garden).headers["x-cache"]] == ["HIT", "HIT"]
    assert client.get(f"/products/{a}").headers["x-cache"] == "MISS"
    client.patch(f"/products/{b}", json={"category": "garden"})  # appears on pages that did not show it
    moved = client.get(garden)
    assert moved.headers["x-cache"] == "MISS" and [p["id"] for p in moved.json()["items"]] == [b]
    assert client.get(f"/products/{a}").headers["x-cache"] == "HIT"


def test_the_same_product_under_another_spelling_is_dropped_too(client: TestClient) -> None:
    """Tags come from the validated id, not the path: /products/007 is product 7's too."""
    created = add(client, MUG)
    spelled = f"/products/{created['id']:03d}"
    assert labels(client, spelled) == ["MISS", "HIT"]
    client.patch(f"/products/{created['id']}", json={"stock": 1})
    again = client.get(spelled)
    assert again.headers["x-cache"] == "MISS" and again.json()["stock"] == 1


# --- an outage: invalidations kept and applied once Redis answers ---------------------------


def redis_shop(make: Make, url: str, **cache: Any) -> FastAPI:
    return make(
        plugins=("health", "db", "redis", "cache", "products"),
        redis={"url": url},
        cache={"backend": "redis", "key_prefix": "fptest:products", **cache},  # a private server
    )


@contextmanager
def paused(server: subprocess.Popen[bytes]) -> Iterator[None]:
    """SIGSTOP the server (Redis hangs: every operation times out) until the block ends."""
    server.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.send_signal(signal.SIGCONT)


def test_a_write_during_an_outage_is_never_served_old_afterwards(
    make: Make, private_redis: Callable[[], subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    """Redis hangs; a read opens the circuit, so the write's invalidation is not even sent.
    The process that wrote applies it before it reads Redis again (its background retry is
    put far off here, so nothing else can have applied it)."""
    server = private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    app = redis_shop(make, url, breaker_failures=1, breaker_cooldown=0.5)
    with caplog.at_level(logging.INFO, logger="fastplug.cache"), TestClient(app) as client:
        backend = Runtime.of(app).services["cache"].backend
        backend.retry_interval = 600
        created = add(client, MUG)
        detail = f"/products/{created['id']}"
        assert labels(client, detail) == ["MISS", "HIT"]
        with paused(server):
            during = client.get(detail)  # times out: the circuit opens
            patched = client.patch(detail, json={"price": "99.00"})
        assert backend.pending.active
        after = [client.get(detail)]
        deadline = time.monotonic() + 10
        while after[-1].headers["x-cache"] == "BYPASS" and time.monotonic() < deadline:  # the cooldown
            time.sleep(0.05)
            after.append(client.get(detail))
        after.append(client.get(detail))
    assert (during.headers["x-cache"], during.json()["price"]) == ("BYPASS", "12.50")
    assert patched.status_code == 200 and patched.json()["price"] == "99.00"
    assert {a.json()["price"] for a in after} == {"99.00"}  # never the old price
    assert [a.headers["x-cache"] for a in after if a.headers["x-cache"] != "BYPASS"] == ["MISS", "HIT"]
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert any(level == logging.WARNING and "cache invalidation deferred" in text for level, text in messages)
    opened = [(level, text) for level, text in messages if "Redis circuit open" in text]
    assert len(opened) == 1 and opened[0][0] == logging.WARNING and "timed out after 0.1s" in opened[0][1]
    assert [level for level, text in messages if "circuit closed" in text] == [logging.INFO]


def test_another_process_sees_a_write_made_during_an_outage(
    make: Make, private_redis: Callable[[], subprocess.Popen[bytes]]
) -> None:
    """B writes while Redis hangs (its circuit open: nothing sent); B's retry applies the
    invalidation once Redis answers, and A, reading the entry from the shared Redis, then
    gets the new data."""
    server = private_redis()
    url = f"redis://127.0.0.1:{private_redis.port}/0"  # type: ignore[attr-defined]
    app_a = redis_shop(make, url)
    app_b = redis_shop(make, url, breaker_failures=1, breaker_cooldown=2.0, invalidation_retry=0.1)
    with TestClient(app_a) as a, TestClient(app_b) as b:
        created = add(a, MUG)  # the same database: make() gives both apps this test's URL
        detail = f"/products/{created['id']}"
        assert [a.get(detail).headers["x-cache"], b.get(detail).headers["x-cache"]] == ["MISS", "HIT"]
        with paused(server):
            assert b.get(detail).headers["x-cache"] == "BYPASS"  # B's circuit opens
            assert b.patch(detail, json={"price": "77.00"}).status_code == 200
        backend_b = Runtime.of(app_b).services["cache"].backend
        deadline = time.monotonic() + 10
        while backend_b.pending.active and time.monotonic() < deadline:  # the retry, every 0.1 s
            time.sleep(0.02)
        assert not backend_b.pending.active, "the kept invalidation was never applied"
        seen_by_a = [a.get(detail) for _ in range(2)]
        seen_by_b = b.get(detail)
    assert [(r.headers["x-cache"], r.json()["price"]) for r in seen_by_a] == [("MISS", "77.00"), ("HIT", "77.00")]
    assert (seen_by_b.headers["x-cache"], seen_by_b.json()["price"]) == ("HIT", "77.00")  # the retry closed it


# --- OpenAPI ------------------------------------------------------------------------------


def test_openapi_documents_models_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]

    def ref(operation: dict[str, Any], status: str) -> str:
        return str(operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]).split("/")[-1]

    listing, create_op = paths["/products"]["get"], paths["/products"]["post"]
    detail, patch = paths["/products/{product_id}"]["get"], paths["/products/{product_id}"]["patch"]
    assert ref(listing, "200") == "ProductPage" and "422" in listing["responses"]
    assert (ref(create_op, "201"), ref(create_op, "400"), ref(create_op, "409")) == (
        "ProductOut",
        "ErrorOut",
        "ErrorOut",
    )
    assert (ref(detail, "200"), ref(detail, "404")) == ("ProductOut", "ErrorOut")
    assert (ref(patch, "200"), ref(patch, "404"), ref(patch, "409")) == ("ProductOut", "ErrorOut", "ErrorOut")
    assert {op["tags"][0] for op in (listing, create_op, detail, patch)} == {"products"}
    params = {p["name"]: p["schema"] for p in listing["parameters"]}
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 5)
    assert params["category"]["anyOf"][0]["maxLength"] == 50
    patch_fields = schemas["ProductPatch"]["properties"]
    assert all("null" not in str(field) for field in patch_fields.values())  # omit, never null
    assert "required" not in schemas["ProductPatch"]
    assert schemas["ProductIn"]["properties"]["stock"]["maximum"] == INT32_MAX
