"""No stale read after a committed write: across 2 workers, on the memory and the Redis
backend, and through a Redis outage (hung, then killed and restarted empty).

Each product has one writer, which PATCHes its price to 1, 2, 3...; a GET that starts
after a PATCH was acknowledged must answer that price or a newer one.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import redis

from chaos.load import Load, Record, Request, describe, improper, statuses

PRODUCTS, WRITERS, CONNECTIONS = 60, 4, 24
PREFIX = "chaos:cache"  # [cache] key_prefix: a tag's generation is PREFIX:gen:<tag> (RedisBackend.generation_key)


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


def stale_reads(records: list[Record], catching_up: tuple[tuple[float, float], ...] = ()) -> list[Record]:
    """GETs answered with a price older than one acknowledged before they started, except
    those started in a ``catching_up`` window (Redis answering again, the invalidations kept
    during the outage not applied yet)."""
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
        excused = any(start <= r.start < end for start, end in catching_up)
        if floor and Decimal(r.json()["price"]) < floor and not excused:
            stale.append(r)
    return stale


def written_during(records: list[Record], start: float, end: float) -> set[int]:
    """Products whose PATCH ran wholly within [start, end] and was acknowledged: their
    invalidation could not reach Redis, so it was kept."""
    return {
        r.request.key[0]
        for r in list(records)
        if r.request.method == "PATCH" and r.status == 200 and start <= r.start and r.end <= end
    }


class InvalidationsSeen:
    """The products a cache invalidation reached, as Redis ran them (its MONITOR shows each
    ``SET PREFIX:gen:product:<id>`` the invalidation script runs), with Redis' clock. One
    connection, opened before the outage: it stays open while Redis hangs, and what Redis
    runs once resumed is all shown; it ends when Redis is killed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[float, int]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-monitor", daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "MONITOR did not start"

    def _run(self) -> None:
        marker = f"SET {PREFIX}:gen:product:"
        try:
            with redis.Redis.from_url(self.url).monitor() as monitor:
                self._ready.set()
                for line in monitor.listen():
                    command = line["command"]
                    if command.startswith(marker):
                        self.seen.append((line["time"], int(command[len(marker) :].split()[0])))
        except (redis.RedisError, OSError):  # Redis killed: nothing more to see
            pass

    def since(self, wall: float) -> set[int]:
        """Products invalidated by Redis after ``wall`` (``time.time()``)."""
        return {product for at, product in list(self.seen) if at > wall}


def generations(url: str) -> set[int]:
    """Products that have a generation in Redis (after a restart: invalidated since)."""
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        values = client.mget([f"{PREFIX}:gen:product:{p}" for p in range(1, PRODUCTS + 1)])
    finally:
        client.close()
    return {p for p, value in enumerate(values, 1) if value is not None}


def wait_stopped(pid: int, limit: float = 10.0) -> None:
    """Wait (bounded) until process ``pid`` is stopped (SIGSTOP taken)."""
    deadline = time.monotonic() + limit
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
        assert time.monotonic() < deadline, "redis-server did not stop on SIGSTOP"
        time.sleep(0.01)


def caught_up(load: Load, kept: set[int], applied: object, what: str, limit: float = 30.0) -> float:
    """Wait (bounded) until every product in ``kept`` is in ``applied()``; the load's clock then."""
    deadline = time.monotonic() + limit
    while missing := kept - applied():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"invalidations kept during {what} never applied: products {missing}"
        time.sleep(0.02)
    return load.now()


def _check(records: list[Record], catching_up: tuple[tuple[float, float], ...] = ()) -> None:
    outcome = statuses(records)
    bad = improper(records)
    assert not bad, f"{len(bad)} improper answers of {len(records)} ({dict(outcome)}): {describe(bad)}"
    writes = sum(1 for r in records if r.request.method == "PATCH" and r.status == 200)
    hits = sum(1 for r in records if r.headers.get("x-cache") == "HIT")
    assert writes > 100 and hits > 100, f"too little traffic to tell: {writes} writes, {hits} hits"
    stale = stale_reads(records, catching_up)
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
    """Reads are excused only from when Redis answers again until the invalidations kept
    during the outage have reached it (waited for: what Redis ran, not a time)."""
    cache = {"backend": "redis", "key_prefix": PREFIX}
    app = _shop(chaos_app, {"redis": {"url": chaos_redis.url}, "cache": cache})
    server = app.serve(workers=2)
    with Load(app.url, _mix(), connections=CONNECTIONS, limit=90, max_requests=20000) as load:
        load.wait_for(1500)
        seen = InvalidationsSeen(chaos_redis.url)
        chaos_redis.pause()  # hung: connections open, nothing answered
        wait_stopped(chaos_redis.proc.pid)
        stopped_wall, paused = time.time(), load.now()  # Redis runs nothing from here until resumed
        time.sleep(3.0)
        chaos_redis.resume()
        resumed = load.now()
        kept_hung = written_during(load.records, paused, resumed)
        hung = (resumed, caught_up(load, kept_hung, lambda: seen.since(stopped_wall), "the hang"))
        load.wait_for(len(load.records) + 1500)
        chaos_redis.kill()  # gone
        killed = load.now()
        time.sleep(2.0)
        chaos_redis.start()  # back, empty: a generation there was set since
        restarted = load.now()
        kept_gone = written_during(load.records, killed, restarted)
        gone = (restarted, caught_up(load, kept_gone, lambda: generations(chaos_redis.url), "the restart"))
        load.wait_for(len(load.records) + 2000)
    assert kept_hung and kept_gone, "no write during an outage: the test shows nothing"
    _check(load.records, catching_up=(hung, gone))
    assert server.terminate() == 0
