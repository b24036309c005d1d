"""The fleet: two app hosts (``serve --workers 2`` each) behind HAProxy, two Celery worker
hosts, and a services host with PostgreSQL (a primary and its standby), Redis (a master, a
replica, three sentinels), PgBouncer in transaction mode in front of the primary, and
RabbitMQ, each host a network namespace (:mod:`fleet.net`).
Prometheus scrapes the app hosts. One fleet serves the whole
module; a test that breaks a part puts it back. Marked ``fleet`` and ``slow``; needs root,
iproute2, PostgreSQL's binaries, redis-server and haproxy (skipped without them, except under
``CI=true``)."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from chaos.app import ChaosApp, Process
from chaos.instances import PrivatePgBouncer

from fleet.balancer import Balancer
from fleet.net import Host, Network
from fleet.prometheus import Prometheus
from fleet.services import MASTER, Postgres, Rabbit, RedisGroup, wait

APP_PORT, METRICS_PORT = 8000, 9100
TESTS = Path(__file__).resolve().parents[1]
PROBE_QUEUE = "fleet-probe"
PRODUCTS = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.fleet)
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("load"))  # one after another, beside the rest


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
    _logs: Iterator[int] = field(default_factory=itertools.count)

    def url(self, name: str) -> str:
        return f"http://{self.hosts[name].address}:{APP_PORT}"

    def _start(self, name: str, kind: str, *args: str) -> Process:
        """``manage.py ARGS`` on host ``name``, its output in the fleet's directory."""
        log = self.root / f"{kind}-{name}-{next(self._logs):02d}.log"
        argv = self.hosts[name].argv(*self.project.manage_argv(*args))
        process = self.servers[name] = Process(argv, self.project.root, log, self.project.env)
        return process

    def serve(self, name: str, limit: float = 60.0) -> Process:
        """Start ``serve --workers 2`` on app host ``name``; wait until ``/health/ready`` is 200."""
        server = self._start(name, "serve", "serve", "--host", "0.0.0.0", "--port", str(APP_PORT), "--workers", "2")

        def ready() -> bool:
            return not server.alive() or httpx.get(f"{self.url(name)}/health/ready", timeout=1.0).status_code == 200

        wait(ready, f"serve on {name} to be ready", limit)
        assert server.alive(), f"serve on {name} exited:\n{server.output()[-3000:]}"
        return server

    def work(self, name: str) -> Process:
        """Start ``manage.py worker`` on worker host ``name``; wait until it consumes."""
        worker = self._start(name, "worker", "worker", "-c", "2", "-n", f"{name}@%h")
        wait(lambda: " ready." in worker.output() or not worker.alive(), f"the worker on {name}", 60)
        assert worker.alive(), worker.output()[-3000:]
        return worker

    @property
    def lb(self) -> Balancer:
        assert self.balancer is not None
        return self.balancer

    @property
    def prom(self) -> Prometheus:
        assert self.prometheus is not None
        return self.prometheus


def _overrides(
    net: Network, bouncer: PrivatePgBouncer, replica: Postgres, redis: RedisGroup, rabbit: Rabbit
) -> dict[str, object]:
    return {
        "plugins": ["health", "metrics", "db", "redis", "cache", "tasks", "users", "products", "probe"],
        "tasks": {
            "broker_url": rabbit.url,
            "embedded_worker": False,
            "queue_type": "quorum",
            "routes": {"probe.*": PROBE_QUEUE},
            "outbox_relay_interval": 0.2,
        },
        "server": {"proxy_headers": True, "forwarded_allow_ips": net.gateway, "graceful_timeout": 10},
        "db": {
            "url": bouncer.url,  # writes and the outbox through PgBouncer; reads on the standby
            "transaction_pooler": True,
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
        pool = stack.enter_context(ThreadPoolExecutor(4))
        booting = pool.submit(Rabbit, services)  # its node takes the longest: it boots meanwhile
        stack.callback(lambda: booting.result().remove())
        pg = Postgres(services, 5432)
        stack.callback(pg.remove)
        pg.sql("CREATE DATABASE app", database="postgres")
        replica = Postgres(services, 5433, primary=pg)
        stack.callback(replica.remove)
        redis = RedisGroup(root, services.address, argv=services.argv)
        stack.callback(redis.stop)
        rabbit = booting.result()
        bouncer = PrivatePgBouncer(
            (services.address, 6432), ("127.0.0.1", pg.port), "app", pool_size=20, prefix=tuple(services.argv())
        )
        stack.callback(bouncer.kill)
        project = ChaosApp(root / "project", _overrides(net, bouncer, replica, redis, rabbit))
        shutil.copy(TESTS / "tasks_probe.py", project.root / "probe.py")  # a local plugin of the project
        project.run("db", "upgrade")
        project.run("db", "seed", "--users", "20", "--products", str(PRODUCTS))
        fleet = Fleet(net, root, services, pg, replica, redis, project)
        stack.callback(lambda: [server.kill() for server in fleet.servers.values()])
        for number, name in ((11, "app1"), (12, "app2"), (21, "work1"), (22, "work2")):
            fleet.hosts[name] = net.host(name, number)
        started = [pool.submit(fleet.serve, "app1"), pool.submit(fleet.serve, "app2")]
        started += [pool.submit(fleet.work, "work1"), pool.submit(fleet.work, "work2")]
        for future in started:
            future.result()
        apps = [(name, f"{fleet.hosts[name].address}:{APP_PORT}") for name in ("app1", "app2")]
        fleet.balancer = Balancer(root, apps)
        stack.callback(fleet.balancer.close)
        fleet.lb.wait_up("app1", "app2")
        targets = [f"{fleet.hosts[name].address}:{METRICS_PORT}" for name in ("app1", "app2")]
        fleet.prometheus = Prometheus(root / "prometheus", targets)
        stack.callback(fleet.prometheus.close)
        wait(lambda: replica.sql("SELECT count(*) FROM products") == str(PRODUCTS), "the standby to have the seed")
        yield fleet
