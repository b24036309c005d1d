"""``[redis.sentinel]``: the shared client finds the master through private sentinels, the
cache works on it, and a failover (the master killed) costs cached routes no 5xx."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync
from fastapi import FastAPI
from fleet.services import MASTER, RedisGroup, wait

from fastplug.core.testing import LiveServer
from tests.conftest import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[RedisGroup]:
    """A private master, its replica and three sentinels on loopback."""
    group = RedisGroup(tmp_path, "127.0.0.1", {name: free_port() for name in RedisGroup.NAMES})
    try:
        yield group
    finally:
        group.stop()


def _settings(group: RedisGroup) -> dict[str, Any]:
    nodes = [f"127.0.0.1:{group.ports[name]}" for name in ("s1", "s2", "s3")]
    return {
        "url": f"redis://{MASTER}/0",
        "sentinel": {"master": MASTER, "nodes": nodes},
        "retry": {"retries": 3, "backoff_base": 0.1, "backoff_cap": 1.0},
    }


def _shop(make: Callable[..., FastAPI], group: RedisGroup, **cache: Any) -> FastAPI:
    """The cache tests' shop, its cache on Redis through ``group``'s sentinels."""
    import cache_shop

    return make(
        extra_plugins={"shop": cache_shop},
        plugins=["health", "redis", "cache", "shop"],
        redis=_settings(group),
        cache={"backend": "redis", "key_prefix": "fp-sentinel:", **cache},
    )


def test_the_sentinels_must_be_named_by_the_master_in_the_url(fastplug_load: Callable[..., Any]) -> None:
    from fastplug.config import FastplugError

    with pytest.raises(FastplugError, match="master's name"):
        fastplug_load(
            plugins=["redis"], redis={"url": "redis://127.0.0.1/0", "sentinel": {"master": "m", "nodes": ["h:1"]}}
        )


def test_the_client_and_the_cache_work_through_the_sentinels(
    replicated: RedisGroup, fastplug_app_factory: Callable[..., FastAPI]
) -> None:
    app = _shop(fastplug_app_factory, replicated)
    master = redis_sync.Redis(port=replicated.ports["master"])
    with LiveServer(app) as live:
        ready = httpx.get(live.url + "/health/ready").json()
        assert ready["checks"]["redis"]["status"] == "ok", ready
        first = httpx.get(live.url + "/items/1")
        second = httpx.get(live.url + "/items/1")
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert any(key.startswith(b"fp-sentinel:") for key in master.keys("*"))  # stored on the master


def test_a_failover_under_load_costs_a_cached_route_no_5xx(
    replicated: RedisGroup, fastplug_app_factory: Callable[..., FastAPI]
) -> None:
    app = _shop(fastplug_app_factory, replicated, op_timeout=0.2)
    statuses: list[int] = []
    stop = threading.Event()
    replica_port = replicated.ports["replica"]
    with LiveServer(app) as live:

        def load() -> None:
            with httpx.Client(base_url=live.url, timeout=10) as client:
                n = 0
                while not stop.is_set() and n < 20_000:  # bounded
                    statuses.append(client.get(f"/items/{n % 50}").status_code)
                    n += 1

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.5)
        replicated.kill("master")
        wait(lambda: replicated.master_port() == replica_port, "the sentinels to promote the replica")
        new_master = redis_sync.Redis(port=replica_port)
        before = len(statuses)
        # the cache writes again, on the new master
        wait(lambda: len(statuses) > before + 50 and any(new_master.scan_iter("fp-sentinel:*")), "writes")
        stop.set()
        worker.join(30)
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


def test_the_cache_eviction_check_asks_the_master_the_sentinels_name(replicated: RedisGroup) -> None:
    from fastplug.plugins.cache import _check_eviction
    from fastplug.plugins.redis.settings import RedisSettings

    conf = RedisSettings(**_settings(replicated))
    [unbounded] = _check_eviction(str(conf.url), conf.sentinel)  # the private master has no maxmemory
    assert unbounded.id == "cache.W002"
    redis_sync.Redis(port=replicated.ports["master"]).config_set("maxmemory", "64mb")
    redis_sync.Redis(port=replicated.ports["master"]).config_set("maxmemory-policy", "allkeys-lru")
    assert _check_eviction(str(conf.url), conf.sentinel) == []


def test_rate_limits_on_redis_work_through_the_sentinels(
    replicated: RedisGroup, fastplug_app_factory: Callable[..., FastAPI]
) -> None:
    import cache_shop

    limits = {"backend": "redis", "key_prefix": "fp-sentinel-rl:", "routes": {"GET /items/*": "3/minute"}}
    app = fastplug_app_factory(
        extra_plugins={"shop": cache_shop},
        plugins=["health", "redis", "security", "shop"],
        redis=_settings(replicated),
        security={"rate_limits": limits},
    )
    master = redis_sync.Redis(port=replicated.ports["master"])
    with LiveServer(app) as live:
        answers = [httpx.get(live.url + f"/items/{n}") for n in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].headers["retry-after"] == "20"
    assert any(key.startswith(b"fp-sentinel-rl:") for key in master.keys("*"))  # the bucket is on the master


def test_a_celery_broker_through_the_sentinels(
    replicated: RedisGroup, fastplug_app_factory: Callable[..., FastAPI], tmp_path: Path
) -> None:
    """``[tasks] broker_url = "sentinel://...;sentinel://..."`` with the master's name in
    ``[tasks.celery] broker_transport_options``: kombu's own Sentinel transport."""
    import tasks_probe

    nodes = ";".join(f"sentinel://127.0.0.1:{replicated.ports[name]}" for name in ("s1", "s2", "s3"))
    tasks = {
        "broker_url": nodes,
        "embedded_worker": True,
        "task_default_queue": "fp-sentinel-tasks",
        "celery": {"broker_transport_options": {"master_name": MASTER}},
    }
    app = fastplug_app_factory(extra_plugins={"probe": tasks_probe}, plugins=["health", "tasks", "probe"], tasks=tasks)
    effects = tmp_path / "effects.txt"
    with LiveServer(app) as live:
        assert httpx.post(live.url + "/probe/delay", json={"path": str(effects), "key": "s1"}).status_code == 201
        wait(lambda: bool(tasks_probe.lines(effects)), "the task, through the sentinels' master")
    master = redis_sync.Redis(port=replicated.ports["master"])
    assert master.exists("_kombu.binding.fp-sentinel-tasks")  # the queue is on the master
