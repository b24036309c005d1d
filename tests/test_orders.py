"""The orders plugin on SQLite and PostgreSQL: placing orders (stock, totals, errors, one email
task in the same transaction), eager reads in a fixed number of queries, the cache tag, and
the confirmation email recorded once by the embedded worker and by a real ``manage.py
worker`` on RabbitMQ."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from fastplug.core.paging import decode_cursor, encode_cursor
from fastplug.core.runtime import Runtime
from fastplug.core.testing import LiveServer, require_service
from fastplug.plugins.orders.models import Order, OrderEmail, OrderItem
from fastplug.plugins.products.models import Product
from fastplug.plugins.tasks.models import OutboxMessage
from fastplug.plugins.users.models import User
from tests.conftest import wait_for

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
PLUGINS = ["health", "db", "tasks", "users", "products", "orders"]
Make = Callable[..., FastAPI]


@pytest.fixture
def queue() -> str:
    """A task queue of this test's own (RabbitMQ's queues are shared by every test run)."""
    return f"fp-orders-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make(fastplug_app_factory: Make, queue: str) -> Make:
    """``make(url, "cache", tasks={...})``: the shop plugins on ``url``, X-DB-Queries on."""

    def build(url: str, *more: str, tasks: dict[str, Any] | None = None, **sections: Any) -> FastAPI:
        db = {"url": url, "auto_migrate": True, "query_count_header": True}
        conf = {"task_default_queue": queue, "outbox_relay_interval": 0.1, **(tasks or {})}
        return fastplug_app_factory(plugins=[*PLUGINS, *more], db=db, tasks=conf, **sections)

    return build


class Shop:
    """Rows written and read straight through the app's own sessionmaker, on its loop."""

    def __init__(self, client: TestClient, app: FastAPI) -> None:
        self.client = client
        self.maker = Runtime.of(app).services["db.sessionmaker"]

    def run(self, coro: Callable[[], Any]) -> Any:
        return self.client.portal.call(coro)  # type: ignore[union-attr]

    def user(self, name: str = "Ada") -> int:
        async def add() -> int:
            async with self.maker() as session:
                user = User(email=f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com", name=name)
                session.add(user)
                await session.commit()
                return user.id

        return int(self.run(add))

    def product(self, price: str, stock: int, name: str = "Mug") -> int:
        async def add() -> int:
            async with self.maker() as session:
                sku = f"SKU-{uuid.uuid4().hex[:8]}"
                product = Product(sku=sku, name=name, category="kitchen", price=Decimal(price), stock=stock)
                session.add(product)
                await session.commit()
                return product.id

        return int(self.run(add))

    def orders_of(self, user_id: int, count: int, product_ids: list[int]) -> None:
        """``count`` orders of one line per product, written in bulk (not through the route)."""

        async def add() -> None:
            async with self.maker() as session:
                rows = [{"user_id": user_id, "status": "placed", "total": Decimal("1.00")} for _ in range(count)]
                ids = (await session.scalars(insert(Order).returning(Order.id), rows)).all()
                items = [
                    {"order_id": i, "product_id": p, "quantity": 1, "unit_price": Decimal("1.00")}
                    for i in ids
                    for p in product_ids
                ]
                await session.execute(insert(OrderItem), items)
                await session.commit()

        self.run(add)

    def scalar(self, query: Any) -> Any:
        async def read() -> Any:
            async with self.maker() as session:
                return await session.scalar(query)

        return self.run(read)

    def stock(self, product_id: int) -> int:
        return int(self.scalar(select(Product.stock).where(Product.id == product_id)))

    def count(self, model: type) -> int:
        return int(self.scalar(select(func.count()).select_from(model)))

    def emails(self) -> list[tuple[int, str, str]]:
        async def read() -> list[tuple[int, str, str]]:
            async with self.maker() as session:
                query = select(OrderEmail.order_id, OrderEmail.recipient, OrderEmail.subject)
                return [tuple(row) for row in (await session.execute(query.order_by(OrderEmail.id))).all()]

        return list(self.run(read))

    def outbox(self) -> list[tuple[str, str, str]]:
        async def read() -> list[tuple[str, str, str]]:
            async with self.maker() as session:
                query = select(OutboxMessage.task, OutboxMessage.payload, OutboxMessage.state)
                return [tuple(row) for row in (await session.execute(query)).all()]

        return list(self.run(read))


@pytest.fixture
def shop(make: Make, db_url: str) -> Iterator[Shop]:
    """The shop app (embedded worker, memory:// broker) on each database, started."""
    app = make(db_url)
    with TestClient(app) as client:
        yield Shop(client, app)


def order(client: Any, user_id: int, *lines: tuple[int, int]) -> httpx.Response:
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    return client.post("/orders", json={"user_id": user_id, "items": items})  # type: ignore[no-any-return]


# --- POST /orders ------------------------------------------------------------------------


def test_an_order_takes_stock_and_records_one_confirmation_email(shop: Shop) -> None:
    user = shop.user("Ada")
    mug, pot = shop.product("9.50", 10, "Mug"), shop.product("12.25", 3, "Pot")
    created = order(shop.client, user, (pot, 1), (mug, 2), (pot, 1))  # pot twice: merged
    assert created.status_code == 201, created.text
    order_id = created.json()["order_id"]
    assert created.json() == {"order_id": order_id, "status": "placed", "total": "43.50"}
    assert created.headers["location"] == f"/orders/{order_id}"
    assert (shop.stock(mug), shop.stock(pot)) == (8, 1)
    wait_for(lambda: shop.emails(), "the confirmation email")
    outbox = shop.outbox()
    assert len(outbox) == 1 and outbox[0][0] == "orders.send_confirmation" and f"[{order_id}]" in outbox[0][1]
    wait_for(lambda: shop.outbox()[0][2] == "done", "the outbox row to be done")
    emails = shop.emails()
    assert len(emails) == 1 and emails[0][0] == order_id
    assert emails[0][1].startswith("ada-") and emails[0][2] == f"Your order #{order_id} is confirmed"
    body = shop.client.get(f"/orders/{order_id}").json()
    assert [(i["product_id"], i["quantity"], i["unit_price"]) for i in body["items"]] == [
        (mug, 2, "9.50"),
        (pot, 2, "12.25"),
    ]


def test_unknown_user_or_product_is_404_and_writes_nothing(shop: Shop) -> None:
    # valid by the schema, so not a 422: what it names does not exist
    user, mug = shop.user(), shop.product("5.00", 4)
    no_user = order(shop.client, user + 1000, (mug, 1))
    no_product = order(shop.client, user, (mug, 1), (mug + 1000, 2))
    neither = order(shop.client, user + 1000, (mug + 1000, 9))
    assert no_user.status_code == no_product.status_code == neither.status_code == 404
    assert no_user.json()["detail"] == [
        {
            "type": "not_found",
            "loc": ["body", "user_id"],
            "msg": f"user {user + 1000} does not exist",
            "input": user + 1000,
        }
    ]
    assert no_product.json()["detail"] == [
        {
            "type": "not_found",
            "loc": ["body", "items", 1, "product_id"],
            "msg": f"product {mug + 1000} does not exist",
            "input": mug + 1000,
        }
    ]
    assert [e["loc"] for e in neither.json()["detail"]] == [["body", "user_id"], ["body", "items", 0, "product_id"]]
    assert shop.stock(mug) == 4 and shop.count(Order) == 0 and shop.outbox() == []


def test_insufficient_stock_is_409_and_writes_nothing(shop: Shop) -> None:
    user = shop.user()
    mug, pot = shop.product("5.00", 4), shop.product("7.00", 1)
    short = order(shop.client, user, (mug, 3), (pot, 2))  # the mug line is taken first, then rolled back
    merged = order(shop.client, user, (mug, 3), (mug, 2))  # 5 of 4, once merged
    assert short.status_code == merged.status_code == 409
    assert short.json() == {"detail": f"insufficient stock: product {pot}: 2 ordered, 1 in stock"}
    assert merged.json() == {"detail": f"insufficient stock: product {mug}: 5 ordered, 4 in stock"}
    assert (shop.stock(mug), shop.stock(pot)) == (4, 1)
    assert shop.count(Order) == 0 and shop.count(OrderItem) == 0 and shop.outbox() == []


def test_a_total_too_large_to_store_is_409_and_writes_nothing(shop: Shop) -> None:
    user, gold = shop.user(), shop.product("99999999.99", 100_000, "Gold")
    huge = order(shop.client, user, (gold, 10_000), (gold, 10_000))
    assert huge.status_code == 409
    assert huge.json() == {"detail": "the order's total 1999999999800.00 exceeds 9999999999.99"}
    assert shop.stock(gold) == 100_000 and shop.count(Order) == 0 and shop.outbox() == []


def test_bodies_out_of_bounds_are_422(shop: Shop) -> None:
    user, mug = shop.user(), shop.product("1.00", 5)
    bad = [
        {"user_id": user, "items": []},
        {"user_id": user, "items": [{"product_id": mug, "quantity": 0}]},
        {"user_id": user, "items": [{"product_id": mug, "quantity": 10_001}]},
        {"user_id": 2**31, "items": [{"product_id": mug, "quantity": 1}]},
        {"user_id": user, "items": [{"product_id": 0, "quantity": 1}]},
        {"user_id": user, "items": [{"product_id": mug, "quantity": 1}] * 101},
        {"user_id": user, "items": [{"product_id": mug, "quantity": 1, "price": "0.01"}]},
        {"user_id": str(user), "items": [{"product_id": mug, "quantity": 1}]},
        {"user_id": user, "items": [{"product_id": mug, "quantity": True}]},
        {"user_id": user, "items": [{"product_id": mug, "quantity": 1.5}]},
    ]
    assert [shop.client.post("/orders", json=body).status_code for body in bad] == [422] * len(bad)
    assert shop.stock(mug) == 5


# --- reads ---------------------------------------------------------------------------------


def test_get_order_and_user_orders(shop: Shop) -> None:
    user, other = shop.user("Ada"), shop.user("Bob")
    mug = shop.product("2.50", 100, "Mug")
    ids = [order(shop.client, user, (mug, n)).json()["order_id"] for n in (1, 2, 3)]
    one = shop.client.get(f"/orders/{ids[0]}")
    assert one.status_code == 200 and one.headers["x-db-queries"] == "3"
    body = one.json()
    assert body["id"] == ids[0] and body["user_id"] == user and body["total"] == "2.50"
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert body["items"] == [
        {
            "product_id": mug,
            "quantity": 1,
            "unit_price": "2.50",
            "product": {"id": mug, "sku": body["items"][0]["product"]["sku"], "name": "Mug", "price": "2.50"},
        }
    ]
    missing = shop.client.get("/orders/999999")
    assert missing.status_code == 404 and missing.json() == {"detail": "order 999999 not found"}

    first = shop.client.get(f"/users/{user}/orders", params={"limit": 2}).json()
    rest = shop.client.get(f"/users/{user}/orders", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [o["id"] for o in first["items"]] == ids[:0:-1] and decode_cursor(first["next_cursor"]) == ids[1]
    assert [o["id"] for o in rest["items"]] == ids[:1] and rest["next_cursor"] is None
    assert [i["quantity"] for o in first["items"] for i in o["items"]] == [3, 2]
    beyond = shop.client.get(f"/users/{user}/orders", params={"cursor": encode_cursor(2**32 - 1)})
    assert [o["id"] for o in beyond.json()["items"]] == ids[::-1]  # above every id: the first page
    malformed = shop.client.get(f"/users/{user}/orders", params={"cursor": "12"})
    assert malformed.status_code == 422
    empty = shop.client.get(f"/users/{other}/orders")
    assert empty.status_code == 200 and empty.json() == {"items": [], "next_cursor": None}
    nobody = shop.client.get("/users/999999/orders")
    assert nobody.status_code == 404 and nobody.json() == {"detail": "user 999999 not found"}


def test_user_orders_take_the_same_queries_for_1_or_200_orders(shop: Shop) -> None:
    few, many = shop.user("Few"), shop.user("Many")
    products = [shop.product("1.00", 10) for _ in range(3)]
    shop.orders_of(few, 1, products)
    shop.orders_of(many, 200, products)  # 600 items

    def queries(user_id: int, **params: int) -> tuple[int, int]:
        response = shop.client.get(f"/users/{user_id}/orders", params=params)
        assert response.status_code == 200
        return len(response.json()["items"]), int(response.headers["x-db-queries"])

    # orders, their items, those items' products: 3 queries whatever the page holds
    assert queries(few) == (1, 3)
    assert queries(many) == (50, 3)
    assert queries(many, limit=200) == (200, 3)
    assert shop.client.get(f"/users/{shop.user('None')}/orders").headers["x-db-queries"] == "2"  # + the user check


# --- the confirmation email, redelivered -------------------------------------------------


def test_a_second_confirmation_task_records_nothing(make: Make, db_url: str) -> None:
    app = make(db_url)
    with TestClient(app) as client:
        shop = Shop(client, app)
        order_id = order(client, shop.user(), (shop.product("3.00", 5), 1)).json()["order_id"]
        wait_for(lambda: shop.emails(), "the confirmation email")
        celery = Runtime.of(app).services["tasks.celery"]
        again = celery.send_task("orders.send_confirmation", (order_id,))  # not through the outbox: unguarded
        assert again.get(timeout=30) is False  # the unique order_id: nothing recorded twice
        gone = celery.send_task("orders.send_confirmation", (order_id + 1000,))
        assert gone.get(timeout=30) is False
        assert [email[0] for email in shop.emails()] == [order_id]


# --- race safety and the cache -----------------------------------------------------------


def test_concurrent_orders_never_oversell(make: Make, db_url: str) -> None:
    app = make(db_url)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        user = client.post("/users", json={"email": "race@example.com", "name": "Race"}).json()["id"]
        a, b = (
            client.post(
                "/products", json={"sku": sku, "name": sku, "category": "race", "price": "1.00", "stock": 10}
            ).json()["id"]
            for sku in ("RACE-A", "RACE-B")
        )
        lines = [[(a, 1), (b, 1)], [(b, 1), (a, 1)]]  # opposite orders: locked by id, no deadlock

        def place(i: int) -> int:
            with httpx.Client(base_url=server.url, timeout=60) as own:
                return order(own, user, *lines[i % 2]).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(place, range(24)))
        stock = [client.get(f"/products/{p}").json()["stock"] for p in (a, b)]
        placed = client.get(f"/users/{user}/orders", params={"limit": 100}).json()["items"]
    assert sorted(set(codes)) == [201, 409] and codes.count(201) == 10
    assert stock == [0, 0] and len(placed) == 10


def test_an_order_drops_the_cached_product_answers(make: Make, sqlite_url: str) -> None:
    with TestClient(make(sqlite_url, "cache")) as client:
        user = client.post("/users", json={"email": "c@example.com", "name": "C"}).json()["id"]
        mug = client.post(
            "/products", json={"sku": "C-1", "name": "Mug", "category": "k", "price": "4.00", "stock": 9}
        ).json()["id"]
        client.get(f"/products/{mug}")
        cached = client.get(f"/products/{mug}")
        assert order(client, user, (mug, 4)).status_code == 201
        fresh = client.get(f"/products/{mug}")
    assert cached.headers["x-cache"] == "HIT" and cached.json()["stock"] == 9
    assert fresh.headers["x-cache"] == "MISS" and fresh.json()["stock"] == 5


# --- a real worker: manage.py worker on RabbitMQ and PostgreSQL ---------------------------


def write_settings(path: Path, db_url: str, queue: str) -> Path:
    path.write_text(
        f'[default]\nplugins = {PLUGINS!r}\n[default.db]\nurl = "{db_url}"\nauto_migrate = true\n'
        f'[default.tasks]\nbroker_url = "{RABBIT}"\ntask_default_queue = "{queue}"\n'
        "embedded_worker = false\noutbox_relay_interval = 0.2\n"
        "[default.tasks.celery]\nworker_enable_remote_control = false\n"
    )
    return path


class Worker:
    """``manage.py worker`` in its own process group, its output in a log file."""

    def __init__(self, settings: Path, log: Path) -> None:
        self.log, self.name = log, f"w{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_MULTIPROC"))}
        args = ["worker", "--loglevel=info", "--concurrency=1", f"--hostname={self.name}@%h"]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(MANAGE), "--settings", str(settings), *args],
                cwd=settings.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the worker exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
        return f"{self.name}@" in self.output() and " ready." in self.output()

    def stop(self) -> int:
        """SIGTERM (warm shutdown), SIGKILL if it lingers; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
                raise AssertionError(f"did not stop on SIGTERM:\n{self.output()[-3000:]}") from None
        return self.proc.returncode


@pytest.fixture
def rabbit_queue(queue: str) -> Iterator[str]:
    """This test's queue on the real RabbitMQ, deleted afterwards."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    yield queue
    from kombu import Connection

    with Connection(RABBIT, connect_timeout=5) as conn:
        conn.default_channel.queue_delete(queue)


@pytest.mark.slow
def test_a_rabbitmq_worker_records_the_email_exactly_once(tmp_path: Path, pg_url: str, rabbit_queue: str) -> None:
    from fastplug.core.app import build_app
    from fastplug.core.bootstrap import load

    settings = write_settings(tmp_path / "settings.toml", pg_url, rabbit_queue)
    app = build_app(*load(settings))
    with TestClient(app) as client:  # migrates; the server relays the outbox, runs no worker
        shop = Shop(client, app)
        worker = Worker(settings, tmp_path / "worker.log")
        try:
            wait_for(worker.ready, "the worker to be ready", limit=90)
            user, mug = shop.user("Rabbit"), shop.product("6.00", 3)
            created = order(client, user, (mug, 2))
            assert created.status_code == 201, created.text
            order_id = created.json()["order_id"]
            wait_for(lambda: shop.emails(), "the worker to record the email", limit=60)
            wait_for(lambda: shop.outbox()[0][2] == "done", "the outbox row to be done")
            emails, outbox = shop.emails(), shop.outbox()
        finally:
            code = worker.stop()
    assert code == 0, worker.output()[-3000:]
    assert len(outbox) == 1 and outbox[0][0] == "orders.send_confirmation"
    assert len(emails) == 1 and emails[0][0] == order_id and emails[0][2] == f"Your order #{order_id} is confirmed"
    assert "orders.send_confirmation" in worker.output() and "Traceback" not in worker.output()
