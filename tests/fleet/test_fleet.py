"""The fleet under load, through the balancer: a host killed, a rolling restart, a Redis
failover, the PostgreSQL standby stopped; a write on one host seen by the other at once."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

import httpx

from chaos.load import Load, Record, Request, describe
from fleet.conftest import PRODUCTS, Fleet


def _reads(seed: int) -> Callable[[int, int], Request]:
    """GETs of products (cached) and users (read on the standby), random ids."""
    rng = random.Random(seed)

    def next_request(worker: int, n: int) -> Request:
        if n % 2:
            return Request("GET", f"/products/{rng.randint(1, PRODUCTS)}")
        return Request("GET", f"/users/{rng.randint(1, 20)}")

    return next_request


def _failed(records: list[Record]) -> list[Record]:
    return [r for r in records if r.status is None or r.status >= 500]


def test_the_balancer_spreads_reads_over_both_hosts(fleet: Fleet) -> None:
    with httpx.Client(base_url=fleet.lb.url) as client:
        for n in range(1, 41):
            assert client.get(f"/products/{n % PRODUCTS + 1}").status_code == 200
    served = {name: fleet.lb.command(f"show servers conn app") for name in ("app1",)}
    assert served
