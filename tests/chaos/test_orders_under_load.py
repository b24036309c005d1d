"""What holds under load and must keep holding: stock is never oversold, and a soak of the
shop's mix on two workers answers every request (with the product cache still hitting
while orders change stock)."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg

from chaos.load import Load, Request, describe, improper, statuses

USERS, PRODUCTS = 200, 1000
SOAK = 20.0  # seconds of the soak (the soak ran 5 minutes; CI runs this one)


def _project(chaos_app, chaos_pg):  # type: ignore[no-untyped-def]
    app = chaos_app({"db": {"url": chaos_pg.url, "auto_migrate": True}, "products": {"cache_ttl": 300.0}})
    app.run("db", "seed", "--users", str(USERS), "--products", str(PRODUCTS), "--orders-per-user", "0")
    return app


async def _stock(dsn: str, product_id: int) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT stock FROM products WHERE id = $1", product_id))
    finally:
        await connection.close()


def test_concurrent_orders_never_oversell(chaos_pg, chaos_app) -> None:
    app = _project(chaos_app, chaos_pg)
    server = app.serve(workers=2)
    import httpx

    body = {
        "sku": f"LAST-{uuid.uuid4().hex[:8]}",
        "name": "the last ones",
        "category": "chaos",
        "price": "9.99",
        "stock": 50,
    }
    product = httpx.post(f"{app.url}/products", json=body).json()["id"]
    rng = random.Random(3)

    def order(worker: int, n: int) -> Request:
        return Request(
            "POST", "/orders", {"user_id": rng.randint(1, USERS), "items": [{"product_id": product, "quantity": 1}]}
        )

    with Load(app.url, order, connections=32, max_requests=500) as load:
        load.wait_for(500)
    outcome = statuses(load.records)
    assert not improper(load.records), describe(improper(load.records))
    assert outcome["201"] == 50 and outcome["409"] == 450, dict(outcome)
    assert asyncio.run(_stock(chaos_pg.dsn, product)) == 0
    assert httpx.get(f"{app.url}/products/{product}").json()["stock"] == 0
    assert server.terminate() == 0


def test_soak_of_the_shop_mix_on_two_workers(chaos_pg, chaos_app) -> None:
    app = _project(chaos_app, chaos_pg)
    server = app.serve(workers=2)
    rng = random.Random(9)

    def mix(worker: int, n: int) -> Request:
        roll = rng.random()
        if roll < 0.7:
            return Request("GET", f"/products/{rng.randint(1, PRODUCTS)}", key="product")
        if roll < 0.9:
            return Request("GET", f"/products?limit=20&category={rng.choice(CATEGORIES)}", key="list")
        items = [{"product_id": rng.randint(1, PRODUCTS), "quantity": 1}]
        return Request("POST", "/orders", {"user_id": rng.randint(1, USERS), "items": items}, key="order")

    with Load(app.url, mix, connections=32, limit=SOAK, max_requests=200_000) as load:
        records = load.finish()
    bad = improper(records)
    assert not bad, f"{len(bad)} improper of {len(records)} ({dict(statuses(records))}): {describe(bad)}"
    reads = [r for r in records if r.request.key == "product" and r.status == 200]
    hits = sum(r.headers.get("x-cache") == "HIT" for r in reads)
    orders = sum(r.status == 201 for r in records if r.request.key == "order")
    print(f"soak: {len(records)} requests, {orders} orders; GET /products/{{id}} HIT ratio {hits / len(reads):.1%}")
    assert orders > 0
    assert hits > len(reads) // 3, f"the product cache barely hits under orders: {hits} of {len(reads)}"
    assert server.terminate() == 0
    assert "Traceback" not in server.output()


CATEGORIES = ["books", "electronics", "home", "kitchen", "garden", "toys", "sports", "clothing", "beauty", "office"]
