"""Fleet scaling on this machine: 1 host x 1 worker, 1 host x 2 workers, and 2 hosts x 2
workers through HAProxy, on a cached route and a one-row read, side by side in one run.

The hosts are network namespaces on one bridge (``tests/fleet``'s topology, minus the
standby and the sentinels): a services host with PostgreSQL and Redis (the cache, shared by
every host), and two app hosts running ``manage.py serve``. Host app1 runs two servers, one
with 1 worker (port 8001) and one with 2 (port 8000); app2 runs one with 2 workers; HAProxy on
loopback balances app1:8000 and app2:8000, and a second HAProxy app1:8000 alone (``1x2-lb``:
what the balancer itself costs). Idle servers take no CPU, so the targets are measured in
interleaved rounds. wrk runs in the root namespace, unpinned: on a machine of two
cores every target shares them with wrk, HAProxy, PostgreSQL and Redis, so the factor
measured is what one more process or host buys on the same cores, not on more hardware.

Run (as root: namespaces need it)::

    .venv/bin/python benchmarks/fleet_scaling.py --duration 8 --rounds 3 --json benchmarks/results/fleet.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import httpx  # noqa: E402
from chaos.app import ChaosApp, Process  # noqa: E402
from fleet.balancer import Balancer  # noqa: E402
from fleet.net import Host, Network  # noqa: E402
from fleet.services import Postgres, wait  # noqa: E402
from run import parse_wrk  # noqa: E402

from fastplug.core.testing import require_tool  # noqa: E402

ROWS = 2000  # users and products seeded; wrk draws ids from 1..ROWS
ROUTES = {
    "cached": ("/products/%d", "GET /products/{id}: a cache hit on Redis (every id warmed)"),
    "onerow": ("/users/%d", "GET /users/{id}: one row from PostgreSQL"),
}
TARGETS = ("1x1", "1x2", "1x2-lb", "2x2-lb")


def _overrides(pg: Postgres, redis_url: str) -> dict[str, Any]:
    return {
        "plugins": ["health", "metrics", "db", "redis", "cache", "users", "products"],
        "db": {"url": pg.url, "pool_size": 5, "max_overflow": 5, "auto_migrate": False},
        "redis": {"url": redis_url},
        "cache": {"backend": "redis", "key_prefix": "fleet-bench:", "max_keys_per_route": 10 * ROWS},
        "products": {"cache_ttl": 3600.0},
    }


def _serve(project: ChaosApp, host: Host, port: int, workers: int, root: Path) -> Process:
    argv = host.argv(*project.manage_argv("serve", "--host", "0.0.0.0", "--port", str(port), "--workers", str(workers)))
    server = Process(argv, project.root, root / f"serve-{host.name}-{port}.log", project.env)
    url = f"http://{host.address}:{port}/health/ready"
    wait(lambda: httpx.get(url, timeout=1).status_code == 200, f"{host.name}:{port}", 60)
    return server


def _script(path: str, where: Path) -> Path:
    script = where / f"{path.strip('/').split('/')[0]}.lua"
    script.write_text(
        f'local fmt = "{path}"\nmath.randomseed(7)\n'
        f'request = function()\n  return wrk.format("GET", string.format(fmt, math.random(1, {ROWS})))\nend\n'
    )
    return script


def _wrk(url: str, script: Path, duration: int, connections: int, allowed: tuple[str, ...]) -> dict[str, Any]:
    host = urlsplit(url).hostname or ""
    if not host.startswith(allowed):
        raise RuntimeError(f"refusing to send traffic to {url}: only loopback and the fleet's hosts")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=True)
    result = parse_wrk(done.stdout)
    return {"rps": result.rps, "p99_ms": result.latency_ms["p99"], "errors": result.errors + result.non_2xx}


def _warm(base: str) -> None:
    """Every product once, through the balancer: the Redis cache then holds every id."""
    with httpx.Client(base_url=base, timeout=10) as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda n: client.get(f"/products/{n}").status_code, range(1, ROWS + 1)))
        assert set(statuses) == {200}, set(statuses)
        seen = client.get("/products/1").headers
        assert seen.get("x-cache") == "HIT", dict(seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for tool in ("wrk", "haproxy", "redis-server"):
        require_tool(tool)
    root = Path(tempfile.mkdtemp(prefix="fastplug-fleet-bench-"))
    results: dict[str, dict[str, list[dict[str, Any]]]] = {r: {t: [] for t in TARGETS} for r in ROUTES}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        net = Network()
        stack.callback(net.close)
        svc, app1, app2 = net.host("svc", 1), net.host("app1", 11), net.host("app2", 12)
        pg = Postgres(svc, 5432)
        stack.callback(pg.remove)
        pg.sql("CREATE DATABASE app", database="postgres")
        redis = subprocess.Popen(
            svc.argv(
                shutil.which("redis-server") or "redis-server",
                *("--bind", svc.address, "--protected-mode", "no", "--save", "", "--appendonly", "no"),
            ),
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        stack.callback(redis.kill)
        project = ChaosApp(root / "project", _overrides(pg, f"redis://{svc.address}:6379/0"))
        project.run("db", "upgrade")
        project.run("db", "seed", "--users", str(ROWS), "--products", str(ROWS), limit=600)
        servers = [
            _serve(project, app1, 8001, 1, root),
            _serve(project, app1, 8000, 2, root),
            _serve(project, app2, 8000, 2, root),
        ]
        for server in servers:
            stack.callback(server.kill)
        balancer = Balancer(root, [("app1", f"{app1.address}:8000"), ("app2", f"{app2.address}:8000")])
        stack.callback(balancer.close)
        balancer.wait_up("app1", "app2")
        (root / "lb1").mkdir()
        alone = Balancer(root / "lb1", [("app1", f"{app1.address}:8000")])  # the balancer's own cost
        stack.callback(alone.close)
        alone.wait_up("app1")
        _warm(balancer.url)
        urls = {
            "1x1": f"http://{app1.address}:8001",
            "1x2": f"http://{app1.address}:8000",
            "1x2-lb": alone.url,
            "2x2-lb": balancer.url,
        }
        allowed = ("127.0.0.1", f"{net.prefix}.")
        for round_ in range(args.rounds):
            for route, (path, _) in ROUTES.items():
                script = _script(path, root)
                shift = round_ % len(TARGETS)
                order = TARGETS[shift:] + TARGETS[:shift]  # each target first in turn
                for target in order:
                    figures = _wrk(urls[target], script, args.duration, args.connections, allowed)
                    results[route][target].append(figures)
                    print(f"round {round_ + 1}/{args.rounds}  {route:7} {target:7} {figures['rps']:>9,.0f} req/s")
                    time.sleep(1)
    report = _report(results)
    print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "args": vars(args) | {"json": str(args.json)}}, indent=1))
    return 0


def _report(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = []
    for route, by_target in results.items():
        lines += [
            f"\n{route}: {ROUTES[route][1]}",
            "| target | req/s (median) | per round | p99 ms (median) | errors | / 1x1 |",
        ]
        lines.append("|---|---|---|---|---|---|")
        base = statistics.median(r["rps"] for r in by_target["1x1"])
        for target, runs in by_target.items():
            rps = statistics.median(r["rps"] for r in runs)
            rounds = " ".join(f"{r['rps']:,.0f}" for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            errors = sum(r["errors"] for r in runs)
            lines.append(f"| {target} | {rps:,.0f} | {rounds} | {p99:.2f} | {errors} | {rps / base:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
