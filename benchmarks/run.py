"""Throughput and latency of fastplug vs bare FastAPI vs the recipe baseline, with wrk.

Each target runs as its own uvicorn process (1 worker, uvloop + httptools when
installed) pinned to CPU 0; wrk runs pinned to CPU 1. Every scenario (a route and the
request headers) is measured on every target, interleaved: one round after another,
the target order rotated, so machine noise lands on all of them. Every server is
stopped on exit, error or Ctrl-C.

    /work/venv/bin/python benchmarks/run.py --duration 10 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "benchmarks" / "baselines"
HOST = "127.0.0.1"
PATH = "/health/live"
EXPECTED_BODY = b'{"status":"ok"}'
SERVER_CPU, CLIENT_CPU = "0", "1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
WRK_GRACE = 30.0
REFERENCE = "bare"
UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
PERCENTILES = ("50", "75", "90", "99")


class BenchError(RuntimeError):
    """A server or wrk misbehaved; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Target:
    """How to serve one app with uvicorn; ``settings`` is a fastplug settings.toml."""

    name: str
    description: str
    app: str
    app_dir: Path | None = None
    factory: bool = False
    settings: str | None = None


ORM_DB = "[default.db]\npool_size = 10\nmax_overflow = 0\nraw_pool = { enabled = false }\n"
RAW_DB = "[default.db]\npool_size = 1\nmax_overflow = 0\nraw_pool = { min_size = 10, max_size = 10 }\n"


def fastplug(name: str, description: str, plugins: Sequence[str], extra: str = "") -> Target:
    """A fastplug target: the real app (``baselines/fastplug_app.py``) with ``plugins``
    plus the ``bench`` plugin's ``GET /bench/json20k``."""
    listed = ", ".join(f'"{p}"' for p in (*plugins, "bench"))
    settings = f"[default]\nplugins = [{listed}]\n{extra}"
    return Target(name, description, "fastplug_app:create", BASELINES, factory=True, settings=settings)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        fastplug("fastplug", "fastplug, health plugin only", ["health"]),
        Target("bare", "bare FastAPI, no middleware (baselines/bare_app.py)", "bare_app:app", BASELINES),
        Target(
            "recipe",
            "article recipe: GZip + BaseHTTPMiddleware metrics (baselines/recipe_app.py)",
            "recipe_app:app",
            BASELINES,
        ),
        fastplug(
            "stack",
            "fastplug, metrics + compression + health, Server-Timing on",
            ["health", "metrics", "compression"],
            "[default.metrics]\ntiming_header = true\n",
        ),
        fastplug("gzip", "fastplug, compression + health", ["health", "compression"]),
        fastplug(
            "stgzip",
            "fastplug, health + Starlette GZipMiddleware(minimum_size=1000) instead of compression",
            ["health"],
            "[default.bench]\nstarlette_gzip = true\n",
        ),
        # issue 3: one row by primary key on PostgreSQL (--scenarios row). Pools of 10 like
        # bare's, so that every server's connections fit PostgreSQL's max_connections (100).
        fastplug("orm", "fastplug, db plugin: ORM session per request (DbSession)", ["health", "db"], ORM_DB),
        fastplug(
            "read",
            "fastplug, db plugin: read-only ORM session (DbReadSession)",
            ["health", "db"],
            ORM_DB + '[default.bench]\nrow = "read"\n',
        ),
        fastplug(
            "raw",
            "fastplug, db plugin: raw asyncpg pool (RawConnection)",
            ["health", "db"],
            RAW_DB + '[default.bench]\nrow = "raw"\n',
        ),
        # issue 4: a cache hit (--scenarios cached); the "fastplug" target serves it uncached
        fastplug("memhit", "fastplug, cache plugin, memory backend", ["health", "cache"]),
        fastplug(
            "redishit",
            "fastplug, cache plugin, Redis backend",
            ["health", "redis", "cache"],
            '[default.redis]\nurl = "redis://127.0.0.1:6379/0"\n[default.cache]\nbackend = "redis"\n',
        ),
    )
}

# issue 6: a request that enqueues a task, on PostgreSQL + RabbitMQ, no worker consuming.
# Opt-in (needs RabbitMQ): --targets tasks --scenarios task_none,task_outbox,task_delay,task_blocking
TASKS_SETTINGS = """[default]
plugins = ["health", "db", "tasks", "bench", "benchtasks"]
[default.db]
url = "postgresql+asyncpg://postgres@127.0.0.1:5432/fastplug_bench_tasks"
auto_migrate = true
[default.tasks]
broker_url = "amqp://guest:guest@127.0.0.1:5672//"
embedded_worker = false
task_default_queue = "fastplug-bench-tasks"
"""
TARGETS["tasks"] = Target(
    "tasks",
    "fastplug, db + tasks (PostgreSQL, RabbitMQ; no worker) (baselines/tasks_app.py)",
    "tasks_app:create",
    BASELINES,
    factory=True,
    settings=TASKS_SETTINGS,
)
OPT_IN_TARGETS = {"tasks"}


@dataclass(frozen=True, slots=True)
class Scenario:
    """One request wrk repeats: a path and its headers, and the body to expect."""

    name: str
    description: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    expected: bytes = EXPECTED_BODY


def _bench_data() -> Any:
    sys.path.insert(0, str(BASELINES))
    try:
        import bench_data
    finally:
        sys.path.remove(str(BASELINES))
    return bench_data


BENCH = _bench_data()
ROW_PATH, ROW_BODY = BENCH.ROW_PATH, BENCH.ROW_BODY
CACHED_PATH, CACHED_BODY = BENCH.CACHED_PATH, BENCH.CACHED_BODY
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def bench_database() -> Iterator[str]:
    """A fresh PostgreSQL database seeded with ``bench_items``, dropped afterwards."""
    import asyncio

    import asyncpg

    name = f"fastplug_bench_{os.getpid()}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def seed(dsn: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(BENCH.SCHEMA)
            await connection.copy_records_to_table("bench_items", records=BENCH.rows())
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        asyncio.run(seed(dsn))
        yield dsn
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _json20k() -> bytes:
    sys.path.insert(0, str(BASELINES))
    try:
        from payload import BODY
    finally:
        sys.path.remove(str(BASELINES))
    return bytes(BODY)


GZIP_ACCEPTED = (("Accept-Encoding", "gzip"),)
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("small", "GET /health/live (15 bytes of JSON), Accept-Encoding: gzip", PATH, GZIP_ACCEPTED),
        Scenario(
            "json20k",
            "GET /bench/json20k (20,283 bytes of JSON), Accept-Encoding: gzip",
            "/bench/json20k",
            GZIP_ACCEPTED,
            _json20k(),
        ),
        Scenario("plain", "GET /health/live, no Accept-Encoding (the first figure's request)", PATH),
        Scenario("row", "GET /bench/row/1: one PostgreSQL row by primary key", ROW_PATH, (), ROW_BODY),
        Scenario(
            "cached", "GET /bench/cached: a small JSON item, cached where a cache is on", CACHED_PATH, (), CACHED_BODY
        ),
    )
}
TASK_BODY = b'{"queued":true}'
for _name, _what in (
    ("none", "no task"),
    ("outbox", "await tasks.enqueue(session, ...) (outbox row, relayed after commit)"),
    ("delay", "await tasks.delay(...) (published in a thread, with a timeout)"),
    ("blocking", "task.delay(...) on the event loop (the recipe's way)"),
):
    _path = f"/bench/task/{_name}"
    SCENARIOS[f"task_{_name}"] = Scenario(f"task_{_name}", f"GET {_path}: an order row + {_what}", _path, (), TASK_BODY)

# (scenario, target, against, goal): the targets, reported as ratios of req/s
COMPARISONS = (
    ("small", "stack", "bare", 0.85),
    ("small", "stack", "recipe", 4.0),
    ("small", "gzip", "fastplug", 0.97),
    ("json20k", "gzip", "stgzip", 1.15),
    ("json20k", "stack", "recipe", None),
)


@dataclass(slots=True)
class Server:
    """A running uvicorn subprocess serving one target."""

    target: Target
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str = PATH) -> str:
        """A URL on this server."""
        return f"http://{HOST}:{self.port}{path}"

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server printed, for error messages."""
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@dataclass(slots=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles in ms, and error counts."""

    rps: float
    latency_ms: dict[str, float]
    requests: int
    errors: int
    non_2xx: int
    transfer_per_request: float | None = None


@dataclass(slots=True)
class Summary:
    """One target over all rounds: medians, spread and ratios to the reference."""

    name: str
    scenario: str
    rps: list[float]
    rps_median: float
    latency_ms: dict[str, float]
    errors: int
    rps_ratio: float | None = None
    p99_ratio: float | None = None
    paired_ratios: list[float] = field(default_factory=list)


# --- processes ------------------------------------------------------------------


def pinned(cpu: str, enabled: bool) -> list[str]:
    """``taskset -c CPU`` as a command prefix, or nothing."""
    return ["taskset", "-c", cpu] if enabled else []


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def loop_options() -> list[str]:
    """uvloop and httptools when installed, uvicorn's pure-Python fallbacks otherwise."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    proto = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return ["--loop", loop, "--http", proto]


def server_command(target: Target, port: int, pin: bool) -> list[str]:
    """The uvicorn command line for ``target``."""
    cmd = [*pinned(SERVER_CPU, pin), sys.executable, "-m", "uvicorn", target.app]
    cmd += ["--host", HOST, "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    cmd += loop_options()
    if target.factory:
        cmd.append("--factory")
    if target.app_dir is not None:
        cmd += ["--app-dir", str(target.app_dir)]
    return cmd


def server_env(target: Target, workdir: Path) -> dict[str, str]:
    """The environment without stray ``FASTPLUG_*`` variables; fastplug gets its own settings file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_MULTIPROC"))}
    if target.settings is not None:
        settings = workdir / f"{target.name}.toml"
        settings.write_text(target.settings)
        env["FASTPLUG_SETTINGS"] = str(settings)
        env["FASTPLUG_ENV"] = "development"
        if "BENCH_PG_DSN" in env:  # the db plugin reads the seeded database
            env["FASTPLUG_DB__URL"] = env["BENCH_PG_DSN"].replace("postgresql://", "postgresql+asyncpg://", 1)
    return env


def start_server(target: Target, port: int, workdir: Path, pin: bool) -> Server:
    """Start ``target`` in its own session (so it can be stopped as a group)."""
    log = workdir / f"{target.name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            server_command(target, port, pin),
            cwd=ROOT,
            env=server_env(target, workdir),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(target, proc, port, log)


def probe(server: Server) -> bool:
    """True when the server answers the route with the expected JSON body."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=1.0)
    try:
        conn.request("GET", PATH)
        response = conn.getresponse()
        body, ctype = response.read(), response.getheader("content-type", "")
    except OSError:
        return False
    finally:
        conn.close()
    if response.status != 200 or body != EXPECTED_BODY or not ctype.startswith("application/json"):
        raise BenchError(f"{server.target.name}: GET {PATH} answered {response.status} {ctype} {body[:80]!r}")
    return True


def wait_ready(server: Server, timeout: float = READY_TIMEOUT) -> None:
    """Poll the route until it answers; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.target.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        if probe(server):
            return
        time.sleep(0.1)
    raise BenchError(f"{server.target.name} did not answer {server.url()} within {timeout:g}s:\n{server.log_tail()}")


def check_scenario(server: Server, scenario: Scenario) -> str:
    """Send the scenario's request once; the body (decoded) must be the expected one.
    Returns how it came back, e.g. ``gzip, 4,665 bytes``."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=5.0)
    try:
        conn.request("GET", scenario.path, headers=dict(scenario.headers))
        response = conn.getresponse()
        raw, encoding = response.read(), response.getheader("content-encoding", "")
    except OSError as exc:
        raise BenchError(f"{server.target.name}: GET {scenario.path} failed: {exc}") from exc
    finally:
        conn.close()
    body = gzip.decompress(raw) if encoding == "gzip" else raw
    if response.status != 200 or body != scenario.expected:
        raise BenchError(f"{server.target.name}: GET {scenario.path} answered {response.status} {body[:80]!r}")
    return f"{encoding or 'identity'}, {len(raw):,} bytes"


def stop_server(server: Server) -> None:
    """SIGTERM the server's process group, then SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        if server.proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(server.proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            server.proc.wait(wait)


@contextmanager
def running(targets: Sequence[Target], workdir: Path, pin: bool) -> Iterator[dict[str, Server]]:
    """Start every target, wait until each answers, stop them all on the way out."""
    servers: dict[str, Server] = {}
    try:
        for target, port in zip(targets, free_ports(len(targets)), strict=True):
            sub = workdir / target.name
            sub.mkdir()
            servers[target.name] = start_server(target, port, sub, pin)
        for server in servers.values():
            wait_ready(server)
        yield servers
    finally:
        with signals_ignored():
            for server in servers.values():
                stop_server(server)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while servers are being stopped (each stop is bounded)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so the cleanup in ``running`` runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


# --- wrk ------------------------------------------------------------------------


def parse_wrk(text: str) -> WrkResult:
    """Requests/s, ``--latency`` percentiles (converted to ms) and errors from wrk's output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or total is None:
        raise BenchError(f"cannot parse wrk output:\n{text}")
    latency = {
        f"p{pct}": round(float(value) * UNIT_MS[unit], 4)
        for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        if pct in PERCENTILES
    }
    if set(latency) != {f"p{p}" for p in PERCENTILES}:
        raise BenchError(f"wrk printed no latency distribution (is --latency passed?):\n{text}")
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    transfer = re.search(r"^Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", text, re.M)
    per_request = None
    if transfer is not None and float(rps.group(1)) > 0:
        scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[transfer.group(2)]
        per_request = round(float(transfer.group(1)) * scale / float(rps.group(1)), 1)
    return WrkResult(
        rps=float(rps.group(1)),
        latency_ms=latency,
        requests=int(total.group(1)),
        errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        transfer_per_request=per_request,
    )


def run_wrk(
    url: str, duration: int, connections: int, threads: int, pin: bool, headers: Sequence[tuple[str, str]] = ()
) -> WrkResult:
    """One wrk run against ``url`` (127.0.0.1 only), bounded by a timeout."""
    if not url.startswith(f"http://{HOST}:"):
        raise BenchError(f"refusing to send traffic to {url}: only {HOST} is allowed")
    cmd = [*pinned(CLIENT_CPU, pin), "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers:
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + WRK_GRACE, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration + WRK_GRACE:g}s") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# --- measuring --------------------------------------------------------------------


def schedule(names: Sequence[str], rounds: int) -> list[list[str]]:
    """Round ``r`` starts at target ``r mod n``: A B C, B C A, C A B, ..."""
    n = len(names)
    return [[*names[r % n :], *names[: r % n]] for r in range(rounds)]


def measure(server: Server, scenario: Scenario, args: argparse.Namespace, pin: bool) -> WrkResult:
    """Warm the server up, then drive it with wrk; fail if it died meanwhile."""
    url = server.url(scenario.path)
    if args.warmup > 0:
        run_wrk(url, args.warmup, args.connections, args.threads, pin, scenario.headers)
    result = run_wrk(url, args.duration, args.connections, args.threads, pin, scenario.headers)
    if server.proc.poll() is not None:
        raise BenchError(f"{server.target.name} died during the run:\n{server.log_tail()}")
    return result


Results = dict[str, dict[str, list[WrkResult]]]  # scenario -> target -> one run per round


def run_rounds(
    servers: dict[str, Server], scenarios: Sequence[Scenario], args: argparse.Namespace, pin: bool
) -> Results:
    """Per round, every scenario on every target in rotated order; progress goes to stderr."""
    results: Results = {s.name: {name: [] for name in servers} for s in scenarios}
    for number, order in enumerate(schedule(list(servers), args.rounds), start=1):
        for scenario in scenarios:
            for name in order:
                result = measure(servers[name], scenario, args, pin)
                results[scenario.name][name].append(result)
                print(
                    f"round {number}/{args.rounds}  {scenario.name:<8} {name:<9} {result.rps:>10,.0f} req/s  "
                    f"p50 {result.latency_ms['p50']:.2f} ms  p99 {result.latency_ms['p99']:.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def summarize(results: dict[str, list[WrkResult]], scenario: str = "", reference: str = REFERENCE) -> list[Summary]:
    """Median req/s and latency per target, and ratios to ``reference`` when measured."""
    summaries = []
    for name, runs in results.items():
        summaries.append(
            Summary(
                name=name,
                scenario=scenario,
                rps=[r.rps for r in runs],
                rps_median=statistics.median(r.rps for r in runs),
                latency_ms={k: statistics.median(r.latency_ms[k] for r in runs) for k in runs[0].latency_ms},
                errors=sum(r.errors + r.non_2xx for r in runs),
            )
        )
    ref = next((s for s in summaries if s.name == reference), None)
    if ref is not None:
        for s in summaries:
            s.rps_ratio = s.rps_median / ref.rps_median
            s.p99_ratio = s.latency_ms["p99"] / ref.latency_ms["p99"]
            s.paired_ratios = [a / b for a, b in zip(s.rps, ref.rps, strict=True)]
    return summaries


# --- reporting --------------------------------------------------------------------


def markdown(rows: list[list[str]]) -> str:
    """A fixed-width text table (also valid Markdown); ``rows[0]`` is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def comparisons(results: Results) -> list[dict[str, Any]]:
    """The issue's ratios that this run measured: medians and per-round ratios."""
    out = []
    for scenario, target, against, goal in COMPARISONS:
        runs = results.get(scenario, {})
        if target not in runs or against not in runs:
            continue
        a, b = [r.rps for r in runs[target]], [r.rps for r in runs[against]]
        ratio = statistics.median(a) / statistics.median(b)
        out.append(
            {
                "scenario": scenario,
                "target": target,
                "against": against,
                "ratio": ratio,
                "per_round": [x / y for x, y in zip(a, b, strict=True)],
                "goal": goal,
                "met": None if goal is None else ratio >= goal,
            }
        )
    return out


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """The comparisons as a table."""
    head = ["scenario", "ratio of req/s", "median", "per round", "goal", "met"]
    body = [
        [
            c["scenario"],
            f"{c['target']} / {c['against']}",
            f"{c['ratio']:.3f}",
            " ".join(f"{r:.3f}" for r in c["per_round"]),
            "-" if c["goal"] is None else f">= {c['goal']:g}",
            "-" if c["met"] is None else ("yes" if c["met"] else "NO"),
        ]
        for c in rows
    ]
    return markdown([head, *body])


def table(summaries: Sequence[Summary], results: dict[str, list[WrkResult]] | None = None) -> str:
    """A fixed-width text table (also valid Markdown)."""
    head = ["target", "req/s (median)", "req/s min-max", "p50 ms", "p90 ms", "p99 ms", "req/s / bare", "p99 / bare"]
    head += ["per-round req/s / bare", "bytes/resp", "errors"]
    rows = [head]
    for s in summaries:
        transfer = [r.transfer_per_request for r in (results or {}).get(s.name, []) if r.transfer_per_request]
        lat = s.latency_ms
        rows.append(
            [
                s.name,
                f"{s.rps_median:,.0f}",
                f"{min(s.rps):,.0f}-{max(s.rps):,.0f}",
                f"{lat['p50']:.2f}",
                f"{lat['p90']:.2f}",
                f"{lat['p99']:.2f}",
                "-" if s.rps_ratio is None else f"{s.rps_ratio:.3f}",
                "-" if s.p99_ratio is None else f"{s.p99_ratio:.3f}",
                " ".join(f"{r:.3f}" for r in s.paired_ratios) or "-",
                f"{statistics.median(transfer):,.0f}" if transfer else "-",
                str(s.errors),
            ]
        )
    return markdown(rows)


def versions() -> dict[str, str]:
    """Versions of what is on the hot path, and of wrk."""
    out = {"python": platform.python_version()}
    for dist in ("fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools", "prometheus-client"):
        with suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5, check=False)
    out["wrk"] = (done.stdout or done.stderr).splitlines()[0].strip() if (done.stdout or done.stderr) else "?"
    return out


def metadata(args: argparse.Namespace, pin: bool) -> dict[str, Any]:
    """When, where and how the figures were made."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "cpu": cpu_model()},
        "loadavg_at_end": os.getloadavg(),
        "pinned": {"server_cpu": SERVER_CPU, "wrk_cpu": CLIENT_CPU} if pin else None,
        "server": " ".join(["uvicorn", "--workers", "1", "--no-access-log", "--log-level", "warning", *loop_options()]),
        "params": {k: getattr(args, k) for k in ("duration", "rounds", "warmup", "connections", "threads")},
        "versions": versions(),
        "targets": {name: TARGETS[name].description for name in args.targets},
        "scenarios": {name: SCENARIOS[name].description for name in args.scenarios},
    }


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, when readable."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def report(
    summaries: dict[str, list[Summary]], results: Results, compared: list[dict[str, Any]], meta: dict[str, Any]
) -> dict[str, Any]:
    """Everything as one JSON-able dict."""
    return {
        **meta,
        "summary": {scenario: [asdict(s) for s in rows] for scenario, rows in summaries.items()},
        "comparisons": compared,
        "runs": {
            scenario: {name: [asdict(r) for r in runs] for name, runs in by_target.items()}
            for scenario, by_target in results.items()
        },
    }


# --- command line -----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options; ``--targets`` is a comma-separated subset of the known targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="whole seconds per measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=2, help="whole seconds of wrk before each run (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument(
        "--targets",
        default=",".join(t for t in TARGETS if t not in OPT_IN_TARGETS),
        help=f"comma-separated, from {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--scenarios",
        default="small,json20k",
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default small,json20k)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    for option, known in (("targets", TARGETS), ("scenarios", SCENARIOS)):
        chosen = list(dict.fromkeys(t.strip() for t in getattr(args, option).split(",") if t.strip()))
        unknown = [t for t in chosen if t not in known]
        if unknown or not chosen:
            parser.error(f"unknown {option} {', '.join(unknown) or '(none)'}; known: {', '.join(known)}")
        setattr(args, option, chosen)
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0 or args.connections < args.threads or args.threads < 1:
        parser.error("need --rounds >= 1, --duration >= 1, --warmup >= 0 and --connections >= --threads >= 1")
    return args


def can_pin() -> bool:
    """Pinning needs taskset and two CPUs (server on 0, wrk on 1)."""
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


@contextmanager
def _environ(name: str, value: str | None) -> Iterator[None]:
    """``os.environ[name] = value`` for the block (nothing when ``value`` is None)."""
    if value is None:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table; optionally write JSON."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("error: wrk is not installed; install it with `apt-get install wrk` (Debian/Ubuntu)")
    pin = can_pin()
    if not pin:
        print("warning: taskset or a second CPU is missing; server and wrk are not pinned", file=sys.stderr)
    raise_on_sigterm()
    scenarios = [SCENARIOS[name] for name in args.scenarios]
    answers: dict[str, dict[str, str]] = {}
    try:
        with (
            bench_database() if "row" in args.scenarios else nullcontext() as dsn,
            _environ("BENCH_PG_DSN", dsn),
            tempfile.TemporaryDirectory(prefix="fastplug-bench-") as tmp,
            running([TARGETS[t] for t in args.targets], Path(tmp), pin) as servers,
        ):
            for scenario in scenarios:
                answers[scenario.name] = {name: check_scenario(srv, scenario) for name, srv in servers.items()}
            results = run_rounds(servers, scenarios, args, pin)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    summaries = {name: summarize(by_target, name) for name, by_target in results.items()}
    compared = comparisons(results)
    meta = metadata(args, pin)
    print(f"\n{meta['date']}  {meta['machine']['cpus']} CPUs ({meta['machine']['cpu']})  {meta['command']}")
    print(f"{meta['server']}; wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency")
    for scenario in scenarios:
        print(f"\n{scenario.name}: {scenario.description}")
        print(table(summaries[scenario.name], results[scenario.name]))
        print("  answers: " + "; ".join(f"{n}: {a}" for n, a in answers[scenario.name].items()))
    if compared:
        print("\n" + comparison_table(compared))
    print()
    for name in args.targets:
        print(f"  {name}: {TARGETS[name].description}")
    if args.json:
        meta["answers"] = answers
        args.json.write_text(json.dumps(report(summaries, results, compared, meta), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
