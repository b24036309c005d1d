"""PostgreSQL restarting, crashing and shutting down under load: only 503 + Retry-After,
no dropped connection, and every acknowledged write is in the database exactly once."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncpg

from chaos.instances import PrivatePostgres
from chaos.load import Load, Record, Request, describe, improper, statuses
from fastplug.plugins.db.sessions import IN_DOUBT

USERS, PRODUCTS = 300, 100


def _shop(pg: PrivatePostgres) -> dict:  # type: ignore[type-arg]
    return {"db": {"url": pg.url, "auto_migrate": True, "pool_timeout": 2.0}}


def _mix(run: str) -> object:
    rng = random.Random(7)

    def next_request(worker: int, n: int) -> Request:
        roll = rng.random()
        if roll < 0.25:
            email = f"{run}-{worker}-{n}@example.com"
            return Request("POST", "/users", {"email": email, "name": f"chaos {worker}.{n}"}, key=email)
        if roll < 0.45:
            return Request("GET", f"/users/{rng.randint(1, USERS)}")
        if roll < 0.6:
            return Request("GET", f"/users/{rng.randint(1, USERS)}/orders?limit=5")
        if roll < 0.75:
            return Request("GET", f"/products/{rng.randint(1, PRODUCTS)}")
        if roll < 0.85:
            return Request("GET", "/users?limit=20")
        items = [{"product_id": rng.randint(1, PRODUCTS), "quantity": 1}]
        return Request("POST", "/orders", {"user_id": rng.randint(1, USERS), "items": items})

    return next_request


def _in_doubt(record: Record) -> bool:
    """A 503 saying the write may or may not have happened (check before retrying)."""
    return record.status == 503 and IN_DOUBT.encode() in record.body


async def _emails(dsn: str, run: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT email, count(*) AS n FROM users WHERE email LIKE $1 GROUP BY email", f"{run}-%"
        )
    finally:
        await connection.close()
    return {row["email"]: row["n"] for row in rows}


def test_restarts_and_crashes_answer_503_and_lose_no_acknowledged_write(chaos_pg, chaos_app) -> None:
    app = chaos_app(_shop(chaos_pg))
    app.run("db", "seed", "--users", str(USERS), "--products", str(PRODUCTS), "--orders-per-user", "1")
    server = app.serve()
    run = uuid.uuid4().hex[:10]
    with Load(app.url, _mix(run), connections=32, limit=90) as load:
        load.wait_for(500)
        chaos_pg.restart("fast")
        load.wait_for(len(load.records) + 500)
        chaos_pg.restart("immediate")  # a crash: recovery on the way back up
        load.wait_for(len(load.records) + 500)
        chaos_pg.stop("fast")  # down for a while, then back
        time.sleep(2.0)
        chaos_pg.start()
        load.wait_for(len(load.records) + 1000)
    records = load.records

    outcome = statuses(records)
    bad = improper(records)
    assert not bad, f"{len(bad)} improper answers of {len(records)} ({dict(outcome)}): {describe(bad)}"
    assert outcome["503"] > 0, f"the outages were not seen: {dict(outcome)}"
    tail = [r for r in records if r.start > records[-1].start - 1.0]
    assert all(r.ok or r.status in (404, 409) for r in tail), f"not recovered: {dict(statuses(tail))}"

    # the ledger: each acknowledged user once; none answered 503 was committed
    stored = asyncio.run(_emails(chaos_pg.dsn, run))
    acknowledged = {r.request.key for r in records if r.request.method == "POST" and r.request.key and r.status == 201}
    refused = {r.request.key for r in records if r.request.key and r.status == 503 and not _in_doubt(r)}
    doubtful = {r.request.key for r in records if r.request.key and _in_doubt(r)}
    assert acknowledged, "no write was acknowledged"
    assert len(doubtful) <= 3, f"{len(doubtful)} writes left in doubt: the outages should resolve them"
    assert not (missing := acknowledged - stored.keys()), f"{len(missing)} acknowledged users lost"
    assert all(n == 1 for n in stored.values())
    assert not (committed := refused & stored.keys()), f"{len(committed)} users answered 503 were committed"
    assert stored.keys() <= acknowledged | refused | doubtful

    assert server.terminate() == 0
    assert "Traceback" not in server.output()


def test_shutdown_while_the_database_is_down_is_clean(chaos_pg, chaos_app) -> None:
    app = chaos_app(_shop(chaos_pg))
    app.run("db", "upgrade")
    server = app.serve()
    run = uuid.uuid4().hex[:10]
    with Load(app.url, _mix(run), connections=8, limit=60) as load:
        load.wait_for(200)
        chaos_pg.stop("fast")
        load.wait_for(len(load.records) + 300)
    bad = improper(load.records)
    assert not bad, f"{len(bad)} improper answers: {describe(bad)}"
    assert server.terminate() == 0
    output = server.output()
    assert "Traceback" not in output
    assert not [line for line in output.splitlines() if line.startswith("ERROR")], output[-3000:]
