"""The fleet under load, through the balancer: a host killed, a rolling restart, a Redis
failover, the PostgreSQL standby stopped, with no failed request; a write on one host seen
by the other at once.

The load is safe requests (GETs of products, cached on Redis, and of users, read on the
standby), which the balancer may send again to the other host when one dies under them.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable

import httpx
import tasks_probe
from chaos.load import Load, Record, Request, describe, statuses

from fleet.conftest import METRICS_PORT, PRODUCTS, Fleet
from fleet.services import wait

USERS = 20


def _reads(seed: int) -> Callable[[int, int], Request]:
    rng = random.Random(seed)

    def next_request(worker: int, n: int) -> Request:
        if n % 2:
            return Request("GET", f"/products/{rng.randint(1, PRODUCTS)}")
        return Request("GET", f"/users/{rng.randint(1, USERS)}")

    return next_request


def _no_failure(records: list[Record], least: int) -> None:
    failed = [r for r in records if r.status is None or r.status >= 500]
    assert not failed, f"{len(failed)} failed of {len(records)} ({dict(statuses(records))}): {describe(failed)}"
    assert len(records) >= least, f"too little traffic to tell: {len(records)} requests"


def _more(load: Load, count: int) -> None:
    load.wait_for(len(load.records) + count, limit=60)


def _metric(fleet: Fleet, host: str, name: str) -> list[float]:
    text = httpx.get(f"http://{fleet.hosts[host].address}:{METRICS_PORT}/metrics", timeout=5).text
    return [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]


def test_the_balancer_spreads_requests_over_both_hosts(fleet: Fleet) -> None:
    before = fleet.lb.served()
    with httpx.Client(base_url=fleet.lb.url) as client:
        for n in range(40):
            assert client.get(f"/products/{n % PRODUCTS + 1}").status_code == 200
    after = fleet.lb.served()
    assert {name: after[name] - before[name] for name in after} == {"app1": 20, "app2": 20}


def test_a_write_on_one_host_is_seen_by_the_other_at_once(fleet: Fleet) -> None:
    on_b = httpx.Client(base_url=fleet.url("app2"))
    on_a = httpx.Client(base_url=fleet.url("app1"))
    with on_a, on_b:
        on_b.get("/products/7")
        cached = on_b.get("/products/7")
        assert cached.headers["x-cache"] == "HIT"
        price = int(float(cached.json()["price"])) + 1
        assert on_a.patch("/products/7", json={"price": price}).status_code == 200
        seen = on_b.get("/products/7")
        assert float(seen.json()["price"]) == price, seen.headers


def test_an_app_host_killed_under_load_costs_no_failed_request(fleet: Fleet) -> None:
    with Load(fleet.lb.url, _reads(1), connections=16, limit=90, max_requests=20_000) as load:
        _more(load, 1000)
        fleet.servers["app1"].kill()  # the whole host's server: gunicorn and both workers
        _more(load, 2000)
        assert fleet.lb.states()["app1"] == "DOWN"
    _no_failure(load.records, 3000)
    fleet.serve("app1")
    fleet.lb.wait_up("app1", "app2")


def test_a_rolling_restart_under_load_costs_no_failed_request(fleet: Fleet) -> None:
    with Load(fleet.lb.url, _reads(2), connections=16, limit=120, max_requests=40_000) as load:
        _more(load, 500)
        for name in ("app1", "app2"):
            fleet.lb.command(f"set server app/{name} state drain")  # no new requests to it
            wait(lambda name=name: fleet.lb.in_flight(name) == 0, f"{name} to finish its requests")
            assert fleet.servers[name].terminate() == 0  # graceful: it finishes what it has
            fleet.serve(name)
            fleet.lb.command(f"set server app/{name} state ready")
            fleet.lb.wait_up(name)
            _more(load, 500)
    _no_failure(load.records, 1500)


def test_a_redis_failover_under_load_costs_no_5xx(fleet: Fleet) -> None:
    redis = fleet.redis
    old = redis.master_name()
    with Load(fleet.lb.url, _reads(3), connections=16, limit=90, max_requests=40_000) as load:
        _more(load, 1000)
        redis.kill(old)
        wait(lambda: redis.master_name() != old, "the sentinels to promote the replica", 30)
        _more(load, 2000)
    _no_failure(load.records, 3000)
    redis.rejoin(old)  # back as the new master's replica, for the tests after this one
    seen = Counter(r.headers.get("x-cache") for r in load.records[-500:])

    def hit_on_both() -> bool:
        for host in ("app1", "app2"):
            with httpx.Client(base_url=fleet.url(host)) as client:
                client.get("/products/3")
                if client.get("/products/3").headers.get("x-cache") != "HIT":
                    return False
        return True

    wait(hit_on_both, f"both hosts' cache to work on the new master (last answers: {dict(seen)})", 30)


def test_the_standby_stopped_under_load_moves_reads_to_the_primary(fleet: Fleet) -> None:
    with Load(fleet.lb.url, _reads(4), connections=16, limit=90, max_requests=40_000) as load:
        _more(load, 1000)
        fleet.replica.stop("fast")
        try:
            _more(load, 1000)
            wait(lambda: _metric(fleet, "app1", "db_replica_usable") == [0.0], "app1 to leave the standby out")
            _more(load, 1000)
        finally:
            fleet.replica.start()
    _no_failure(load.records, 3000)
    wait(lambda: _metric(fleet, "app1", "db_replica_usable") == [1.0], "app1 to use the standby again", 30)


APP_REQUESTS = 'sum(http_requests_total{route!~"/health/.*"})'


def test_prometheus_scrapes_both_hosts_and_counts_what_the_balancer_counted(fleet: Fleet) -> None:
    prom = fleet.prom
    wait(lambda: set(prom.targets_up().values()) == {"up"}, "prometheus to scrape both hosts", 30)
    instances = {dict(k)["instance"] for k in prom.query("up")}
    assert instances == {f"{fleet.hosts[name].address}:{METRICS_PORT}" for name in ("app1", "app2")}
    time.sleep(1.5)  # a scrape after any earlier test's last request
    before, counted = time.time(), fleet.lb.total()
    with Load(fleet.lb.url, _reads(5), connections=8, limit=60, max_requests=3000) as load:
        load.wait_for(3000)
    sent = fleet.lb.total() - counted
    _no_failure(load.records, 3000)
    time.sleep(2.5)  # two scrapes after the last request
    after = time.time()
    (start,) = prom.query(APP_REQUESTS, before).values()
    (end,) = prom.query(APP_REQUESTS, after).values()
    assert sent == 3000
    assert abs((end - start) - sent) <= sent * 0.01, (end - start, sent)
    per_host = prom.query('sum by (instance) (increase(http_requests_total{route!~"/health/.*"}[30s]))')
    assert len(per_host) == 2 and all(v > 0 for v in per_host.values()), per_host
    (rate,) = prom.query('sum(rate(http_requests_total{route!~"/health/.*"}[30s]))').values()
    assert rate > 0


def test_outbox_tasks_run_once_across_two_relaying_hosts_and_two_worker_hosts(fleet: Fleet) -> None:
    """Orders of work posted through the balancer (both hosts enqueue in their transactions and
    relay their outboxes, SKIP LOCKED), routed to a quorum queue, consumed by both worker hosts:
    each task's side effect once."""
    effects = fleet.root / "effects.txt"
    keys = [f"k{n}" for n in range(400)]
    pending = iter(keys)

    def post(worker: int, n: int) -> Request:
        key = next(pending)
        return Request("POST", "/probe/outbox", {"path": str(effects), "key": key}, key=key)

    with Load(fleet.lb.url, post, connections=8, limit=60, max_requests=len(keys)) as load:
        load.wait_for(len(keys))
    assert [r.status for r in load.records] == [201] * len(keys), dict(statuses(load.records))
    try:
        wait(lambda: len(tasks_probe.lines(effects)) >= len(keys), "every task to run", 60)
    except AssertionError:
        states = fleet.pg.sql("SELECT state, count(*) FROM tasks_outbox GROUP BY state")
        logs = {name: fleet.servers[name].output()[-1500:] for name in ("work1", "app1")}
        raise AssertionError(f"{len(tasks_probe.lines(effects))} ran; outbox {states}; {logs}") from None
    time.sleep(1.0)  # a duplicate would come now
    ran = Counter(line.split()[0] for line in tasks_probe.lines(effects))
    assert sorted(ran) == sorted(keys) and set(ran.values()) == {1}, [k for k, n in ran.items() if n > 1]
    pids = {int(line.split()[1]) for line in tasks_probe.lines(effects)}
    by_host = {name: pids & set(fleet.hosts[name].pids()) for name in ("work1", "work2")}
    assert all(by_host.values()), f"a worker host ran nothing: {by_host}"
    states = fleet.pg.sql("SELECT state, count(*) FROM tasks_outbox GROUP BY state")
    assert states == f"done|{len(keys)}", states


def test_behind_the_balancer_the_client_is_who_the_balancer_says(fleet: Fleet) -> None:
    """``[server] proxy_headers`` trusts the balancer's address only: through it, the client is
    the one HAProxy saw (loopback here), whatever ``X-Forwarded-For`` the client sent; directly,
    the peer. The health details are for the fleet's network only (``[metrics] allow``)."""
    inside = f"{fleet.net.prefix}.99"

    def detail(base: str, headers: dict[str, str] | None = None) -> bool:
        answer = httpx.get(f"{base}/health/ready", headers=headers or {}, timeout=5).json()
        return "detail" in answer["checks"]["db"]

    assert detail(fleet.url("app1"))  # the peer itself is on the fleet's network
    assert not detail(fleet.lb.url)  # through the balancer: the client is 127.0.0.1
    assert not detail(fleet.lb.url, {"X-Forwarded-For": inside})  # a forged hop changes nothing
