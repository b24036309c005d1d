"""The fleet: two app hosts (``serve --workers 2`` each) behind HAProxy, and a services host
with PostgreSQL (a primary and its standby) and Redis (a master, a replica, three
sentinels), each host a network namespace (:mod:`fleet.net`). One fleet serves the whole
module; a test that breaks a part puts it back. Marked ``fleet`` and ``slow``; needs root,
iproute2, PostgreSQL's binaries, redis-server and haproxy (skipped without them, except under
``CI=true``)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from chaos.app import ChaosApp, Process

from fleet.balancer import Balancer
from fleet.net import Host, Network
from fleet.prometheus import Prometheus
from fleet.services import MASTER, Postgres, RedisGroup, wait

APP_PORT, METRICS_PORT = 8000, 9100
PRODUCTS = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.fleet)
            item.add_marker(pytest.mark.slow)


@dataclass
class Fleet:
    """Everything the fixture started; ``serve(name)`` (re)starts an app host's server."""

    net: Network
    root: Path
    services: Host
    pg: Postgres
    replica: Postgres
    redis: RedisGroup
    project: ChaosApp
    hosts: dict[str, Host] = field(default_factory=dict)
    servers: dict[str, Process] = field(default_factory=dict)
    balancer: Balancer | None = None
    prometheus: Prometheus | None = None

    def url(self, name: str) -> str:
        return f"http://{self.hosts[name].address}:{APP_PORT}"

    def serve(self, name: str, limit: float = 60.0) -> Process:
        host = self.hosts[name]
        self.project._logs += 1
        log = self.root / f"{self.project._logs:02d}-serve-{name}.log"
        serve = ("serve", "--host", "0.0.0.0", "--port", str(APP_PORT), "--workers", "2")
        argv = host.argv(*self.project.manage_argv(*serve))
        server = Process(argv, self.project.root, log, self.project.env)
        self.servers[name] = server
        deadline = time.monotonic() + limit
        while True:
            if not server.alive():
                raise AssertionError(f"serve on {name} exited:\n{server.output()[-3000:]}")
            try:
                if httpx.get(f"{self.url(name)}/health/ready", timeout=1.0).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve on {name} not ready within {limit:g}s:\n{server.output()[-3000:]}")
            time.sleep(0.1)

    @property
    def lb(self) -> Balancer:
        assert self.balancer is not None
        return self.balancer

    @property
    def prom(self) -> Prometheus:
        assert self.prometheus is not None
        return self.prometheus


def _overrides(net: Network, pg: Postgres, replica: Postgres, redis: RedisGroup) -> dict[str, object]:
    return {
        "plugins": ["health", "metrics", "db", "redis", "cache", "users", "products"],
        "server": {"proxy_headers": True, "forwarded_allow_ips": net.gateway, "graceful_timeout": 10},
        "db": {
            "url": pg.url,
            "read_urls": [replica.url],
            "pool_size": 5,
            "max_overflow": 5,
            "raw_pool": {"min_size": 1, "max_size": 4},
            "replica_check_interval": 0.5,
            "replica_retry": 2.0,
            "auto_migrate": False,
        },
        "redis": {
            "url": f"redis://{MASTER}/0",
            "sentinel": {"master": MASTER, "nodes": redis.nodes()},
            "retry": {"retries": 3, "backoff_base": 0.1, "backoff_cap": 1.0},
        },
        "cache": {"backend": "redis", "key_prefix": "fleet:"},
        "metrics": {"port": METRICS_PORT, "host": "0.0.0.0", "allow": [f"{net.prefix}.0/24"]},
        "products": {"cache_ttl": 300.0},
    }


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    root = Path(tempfile.mkdtemp(prefix="fastplug-fleet-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        net = Network()
        stack.callback(net.close)  # last: kills whatever still runs in a host
        services = net.host("svc", 1)
        pg = Postgres(services, 5432)
        stack.callback(pg.remove)
        pg.sql("CREATE DATABASE app", database="postgres")
        replica = Postgres(services, 5433, primary=pg)
        stack.callback(replica.remove)
        redis = RedisGroup(services, root)
        stack.callback(redis.stop)
        project = ChaosApp(root / "project", _overrides(net, pg, replica, redis))
        project.run("db", "upgrade")
        project.run("db", "seed", "--users", "20", "--products", str(PRODUCTS))
        fleet = Fleet(net, root, services, pg, replica, redis, project)
        stack.callback(lambda: [server.kill() for server in fleet.servers.values()])
        for number, name in ((11, "app1"), (12, "app2")):
            fleet.hosts[name] = net.host(name, number)
        for name in fleet.hosts:
            fleet.serve(name)
        fleet.balancer = Balancer(root, [(n, f"{h.address}:{APP_PORT}") for n, h in fleet.hosts.items()])
        stack.callback(fleet.balancer.close)
        fleet.lb.wait_up("app1", "app2")
        targets = [f"{h.address}:{METRICS_PORT}" for h in fleet.hosts.values()]
        fleet.prometheus = Prometheus(root / "prometheus", targets)
        stack.callback(fleet.prometheus.close)
        wait(lambda: replica.sql("SELECT count(*) FROM products") == str(PRODUCTS), "the standby to have the seed")
        yield fleet
