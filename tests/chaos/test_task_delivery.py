"""Every order's confirmation task runs exactly once after a RabbitMQ outage (a broker that
lost its messages and a worker killed with tasks in flight: ``test_task_redelivery``).

Orders go through the transactional outbox, so ``POST /orders`` succeeds while the broker
is down; the ledger is the acknowledged order ids against ``order_emails`` (one row per
order, written by the task) and the outbox (every row done, each run once).
"""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg

from chaos.instances import PrivatePostgres
from chaos.load import Load, Request, describe, improper, statuses

USERS, PRODUCTS = 50, 200
# short timings, so the bounds below are reached in a test: what matters is that each
# bound follows from these settings (see the tasks section of the README)
TASKS = {
    "embedded_worker": False,
    "outbox_relay_interval": 0.5,
    "outbox_redelivery_timeout": 8.0,
    "visibility_timeout": 10.0,
    "redis_restore_interval": 1.0,
}


def _orders(rng: random.Random) -> object:
    def next_request(worker: int, n: int) -> Request:
        items = [{"product_id": rng.randint(1, PRODUCTS), "quantity": 1}]
        return Request("POST", "/orders", {"user_id": rng.randint(1, USERS), "items": items})

    return next_request


def _place(app, count: int, connections: int = 8) -> list[int]:  # type: ignore[no-untyped-def]
    """Place ``count`` orders; the ids of those acknowledged (every request answered properly)."""
    with Load(app.url, _orders(random.Random(count)), connections=connections, max_requests=count, limit=120) as load:
        load.wait_for(count, limit=120)
    bad = improper(load.records)
    assert not bad, f"{len(bad)} improper answers ({dict(statuses(load.records))}): {describe(bad)}"
    return [r.json()["order_id"] for r in load.records if r.status == 201]


async def _ledger(dsn: str, ids: list[int]) -> tuple[int, int, dict[str, int]]:
    connection = await asyncpg.connect(dsn)
    try:
        emails = await connection.fetchval("SELECT count(*) FROM order_emails WHERE order_id = ANY($1::int[])", ids)
        duplicates = await connection.fetchval(
            "SELECT count(*) FROM (SELECT order_id FROM order_emails GROUP BY order_id HAVING count(*) > 1) d"
        )
        states = dict(await connection.fetch("SELECT state, count(*) FROM tasks_outbox GROUP BY state"))
    finally:
        await connection.close()
    return int(emails), int(duplicates), {str(k): int(v) for k, v in states.items()}


def _delivered(pg: PrivatePostgres, ids: list[int], limit: float) -> float:
    """Wait until every acknowledged order has its email; seconds it took (bounded by ``limit``)."""
    began = time.monotonic()
    while True:
        emails, duplicates, states = asyncio.run(_ledger(pg.dsn, ids))
        assert duplicates == 0
        if emails == len(ids):
            return time.monotonic() - began
        if time.monotonic() - began > limit:
            raise AssertionError(f"{len(ids) - emails} of {len(ids)} emails missing after {limit:g}s; outbox {states}")
        time.sleep(0.25)


def _project(chaos_app, pg: PrivatePostgres, broker: str, **tasks: object):  # type: ignore[no-untyped-def]
    app = chaos_app({"db": {"url": pg.url, "auto_migrate": True}, "tasks": {**TASKS, **tasks, "broker_url": broker}})
    app.run("db", "seed", "--users", str(USERS), "--products", str(PRODUCTS), "--orders-per-user", "0")
    return app


def _all_done(pg: PrivatePostgres) -> None:
    _, _, states = asyncio.run(_ledger(pg.dsn, []))
    assert set(states) <= {"done"}, states


def test_orders_during_a_rabbitmq_outage_are_delivered_once_when_it_returns(chaos_pg, chaos_rabbit, chaos_app) -> None:
    app = _project(chaos_app, chaos_pg, chaos_rabbit.url)
    server = app.serve()
    worker = app.worker("-c", "2")
    _delivered(chaos_pg, _place(app, 20), limit=60)  # running: the worker is up
    chaos_rabbit.kill()
    ids = _place(app, 200)  # accepted while the broker is down: they wait in the outbox
    assert len(ids) > 150, "too few orders accepted during the outage"
    chaos_rabbit.start()
    took = _delivered(chaos_pg, ids, limit=90)
    print(f"broker outage: {len(ids)} orders delivered {took:.1f}s after RabbitMQ came back")
    _all_done(chaos_pg)
    assert worker.terminate() == 0 and server.terminate() == 0
