"""No stale read after a committed write: across 2 workers, on the memory and the Redis
backend, and through a Redis outage (hung, then killed and restarted empty).

Each product has one writer, which PATCHes its price to 1, 2, 3...; a GET that starts
after a PATCH was acknowledged must answer that price or a newer one.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from decimal import Decimal

from chaos.load import Load, Record, Request, describe, improper, statuses

PRODUCTS, WRITERS, CONNECTIONS = 60, 4, 24


def _mix() -> object:
    rng = random.Random(11)
    versions: dict[int, int] = defaultdict(int)

    def next_request(worker: int, n: int) -> Request:
        if worker < WRITERS and n % 3 == 0:  # a writer also reads between its writes
            product = rng.randrange(worker, PRODUCTS, WRITERS) + 1
            versions[product] += 1
            return Request(
                "PATCH", f"/products/{product}", {"price": versions[product]}, key=(product, versions[product])
            )
        product = rng.randint(1, PRODUCTS)
        return Request("GET", f"/products/{product}", key=(product, None))

    return next_request


# What the cache promises after a Redis outage: an invalidation that failed during it is
# retried every ``invalidation_retry`` (0.5 s), so the other processes see it at most
# ``invalidation_retry + op_timeout`` (0.6 s) after Redis answers again; 0.4 s of slack.
CATCH_UP = 1.0


def stale_reads(records: list[Record], back: tuple[float, ...] = ()) -> list[Record]:
    """GETs answered with a price older than one acknowledged before they started, except in
    the first ``CATCH_UP`` seconds after each time in ``back`` (Redis answering again)."""
    acked: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for r in records:
        if r.request.method == "PATCH" and r.status == 200:
            product, version = r.request.key
            acked[product].append((r.end, version))
    stale = []
    for r in records:
        if r.request.method != "GET" or r.status != 200:
            continue
        product = r.request.key[0]
        floor = max((v for end, v in acked[product] if end < r.start), default=0)
        catching_up = any(t <= r.start < t + CATCH_UP for t in back)
        if floor and Decimal(r.json()["price"]) < floor and not catching_up:
            stale.append(r)
    return stale


def _check(records: list[Record], back: tuple[float, ...] = ()) -> None:
    outcome = statuses(records)
    bad = improper(records)
    assert not bad, f"{len(bad)} improper answers of {len(records)} ({dict(outcome)}): {describe(bad)}"
    writes = sum(1 for r in records if r.request.method == "PATCH" and r.status == 200)
    hits = sum(1 for r in records if r.headers.get("x-cache") == "HIT")
    assert writes > 100 and hits > 100, f"too little traffic to tell: {writes} writes, {hits} hits"
    stale = stale_reads(records, back)
    assert not stale, f"{len(stale)} stale reads of {len(records)}: {describe(stale)}"


def _shop(app_factory, tmp_extra: dict) -> object:  # type: ignore[type-arg]
    app = app_factory({"products": {"cache_ttl": 300.0}, **tmp_extra})
    app.run("db", "seed", "--users", "10", "--products", str(PRODUCTS), "--orders-per-user", "0")
    return app


def test_memory_cache_across_two_workers_is_never_stale(chaos_app) -> None:
    app = _shop(chaos_app, {})
    server = app.serve(workers=2)
    with Load(app.url, _mix(), connections=CONNECTIONS, limit=60, max_requests=6000) as load:
        load.wait_for(6000)
    _check(load.records)
    assert server.terminate() == 0


def test_redis_cache_through_an_outage_is_never_stale(chaos_app, chaos_redis) -> None:
    app = _shop(chaos_app, {"redis": {"url": chaos_redis.url}, "cache": {"backend": "redis"}})
    server = app.serve(workers=2)
    with Load(app.url, _mix(), connections=CONNECTIONS, limit=90, max_requests=20000) as load:
        load.wait_for(1500)
        chaos_redis.pause()  # hung: connections open, nothing answered
        time.sleep(3.0)
        chaos_redis.resume()
        resumed = load.now()
        load.wait_for(len(load.records) + 1500)
        chaos_redis.kill()  # gone
        time.sleep(2.0)
        chaos_redis.start()  # back, empty
        restarted = load.now()
        load.wait_for(len(load.records) + 2000)
    _check(load.records, back=(resumed, restarted))
    assert server.terminate() == 0
