"""Throughput and latency of fastplug vs bare FastAPI vs the recipe baseline, with wrk.

Each target runs as its own uvicorn process (1 worker, uvloop + httptools when
installed) pinned to CPU 0; wrk runs pinned to CPU 1. Every scenario (a route and the
request headers) is measured on every target, interleaved: one round after another,
the target order rotated, so machine noise lands on all of them. Every server is
stopped on exit, error or Ctrl-C.

    .venv/bin/python benchmarks/run.py --duration 10 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import importlib
import importlib.metadata
import importlib.util
import itertools
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
    database: str | None = None  # "domain": the db plugin reads the seeded domain database


ORM_DB = "[default.db]\npool_size = 10\nmax_overflow = 0\nraw_pool = { enabled = false }\n"
RAW_DB = "[default.db]\npool_size = 1\nmax_overflow = 0\nraw_pool = { min_size = 10, max_size = 10 }\n"


def fastplug(
    name: str, description: str, plugins: Sequence[str], extra: str = "", database: str | None = None
) -> Target:
    """A fastplug target: the real app (``baselines/fastplug_app.py``) with ``plugins``
    plus the ``bench`` plugin's ``GET /bench/json20k``."""
    listed = ", ".join(f'"{p}"' for p in (*plugins, "bench"))
    settings = f"[default]\nplugins = [{listed}]\n{extra}"
    return Target(name, description, "fastplug_app:create", BASELINES, True, settings, database)


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

# issue 7: serialize once (--scenarios list20k,products) and the domain routes on PostgreSQL
# seeded with `manage.py db seed` (--scenarios user,user_orders). Pools of 10 (production's
# raw pool size) except the recipe's 20 + 30; no cache on the domain routes.
DOMAIN_DB = """[default.db]
pool_size = 10
max_overflow = 0
statement_timeout_ms = 30000
raw_pool = { min_size = 2, max_size = 10 }
"""
DOMAIN_PLUGINS = ("health", "db", "users", "products", "orders", "tasks")
ISSUE7_TARGETS = (
    Target(
        "fastapi",
        "FastAPI default response-model path: handlers return dicts / ORM rows (baselines/fastapi_app.py)",
        "fastapi_app:app",
        BASELINES,
    ),
    Target(
        "fastapi_models",
        "FastAPI default path, the handler returns prebuilt Page models (not re-validated)",
        "fastapi_app:models_app",
        BASELINES,
    ),
    fastplug("serialize", "fastplug, core.serialize from prebuilt Page models, per request", ["health"]),
    fastplug(
        "serialize_dicts",
        "fastplug, core.serialize from the dicts (TypedDict adapter, no validation), per request",
        ["health"],
        '[default.bench]\nlist20k = "dicts"\n',
    ),
    Target(
        "rawjson", "raw ASGI app, json.dumps per request, no framework (baselines/raw_app.py)", "raw_app:app", BASELINES
    ),
    fastplug(
        "fp_products",
        "fastplug products plugin, cache plugin off (the serializer effect)",
        ["health", "db", "products"],
        DOMAIN_DB,
        "domain",
    ),
    fastplug(
        "fp_cached",
        "fastplug products plugin + cache plugin on Redis (what users get: hits)",
        ["health", "db", "redis", "cache", "products"],
        DOMAIN_DB + '[default.redis]\nurl = "redis://127.0.0.1:6379/0"\n'
        '[default.cache]\nbackend = "redis"\nkey_prefix = "fastplug-bench:cache"\n',
        "domain",
    ),
    fastplug(
        "fp_domain",
        "fastplug users/products/orders plugins on PostgreSQL, no cache",
        DOMAIN_PLUGINS,
        DOMAIN_DB + '[default.tasks]\nbroker_url = "memory://"\nembedded_worker = false\n',
        "domain",
    ),
)
TARGETS.update({t.name: t for t in ISSUE7_TARGETS})
OPT_IN_TARGETS.update(t.name for t in ISSUE7_TARGETS)

# issue 12: the same handlers (baselines/hot.py) in bare FastAPI, fastplug and Litestar
HOT_BENCH = "[default.bench]\nhot = true\n"
HOT_CACHE_PREFIX = f"fastplug-bench-hot-{os.getpid()}"
HOT_CACHE = (
    "[default.cache]\nmax_keys_per_route = 200000\nmax_entries = 200000\nmax_bytes = 268435456\n"
    f'key_prefix = "{HOT_CACHE_PREFIX}"\n'
)


def drop_redis_keys(prefix: str) -> None:
    """Delete the run's cache keys from the shared Redis."""
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        scan = client.scan_iter(match=f"{prefix}*", count=1000)
        for batch in iter(lambda: list(itertools.islice(scan, 1000)), []):
            client.delete(*batch)
    finally:
        client.close()


HOT_FULL = ["health", "metrics", "compression", "db", "redis", "cache"]
HOT_FULL_EXTRA = (
    RAW_DB + HOT_BENCH + '[default.metrics]\ntiming_header = true\n[default.redis]\nurl = "redis://127.0.0.1:6379/0"\n'
)
ISSUE12_TARGETS = (
    Target("hbare", "bare FastAPI + raw asyncpg pool, the routes of baselines/hot.py", "hot_bare:app", BASELINES),
    fastplug("hcore", "fastplug core only: health + db (raw pool)", ["health", "db"], RAW_DB + HOT_BENCH),
    fastplug(
        "hfull",
        "fastplug full stack: health, metrics (Server-Timing), compression, db (raw pool), redis, cache (memory)",
        HOT_FULL,
        HOT_FULL_EXTRA + HOT_CACHE,
    ),
    fastplug(
        "hfullr",
        "fastplug full stack, cache on Redis",
        HOT_FULL,
        HOT_FULL_EXTRA + HOT_CACHE + 'backend = "redis"\n',
    ),
    Target(
        "litestar",
        "Litestar + PrometheusMiddleware + gzip (level 5), raw asyncpg pool (baselines/hot_litestar.py)",
        "hot_litestar:app",
        BASELINES,
    ),
)
TARGETS.update({t.name: t for t in ISSUE12_TARGETS})
OPT_IN_TARGETS.update(t.name for t in ISSUE12_TARGETS)

# issue 14: the full stack with the security plugin (allowed hosts, CORS, headers, a rate limit
# on the route wrk asks for, never reached: one client, a rate it never uses up)
HOT_SECURITY = (
    '[default.security]\nallowed_hosts = ["127.0.0.1", "localhost"]\n'
    '[default.security.cors]\nallow_origins = ["https://app.example.com"]\n'
    "[default.security.headers]\ncontent_security_policy = \"default-src 'self'\"\n"
    '[default.security.rate_limits]\nkey_prefix = "' + HOT_CACHE_PREFIX + '-rl:"\n'
    'routes = { "GET /hello" = "1000000000/minute", "GET /cached/*" = "1000000000/minute" }\n'
)
ISSUE14_TARGETS = (
    fastplug(
        "hsec",
        "hfull + security (hosts, CORS, headers, a rate limit in memory)",
        [*HOT_FULL, "security"],
        HOT_FULL_EXTRA + HOT_CACHE + HOT_SECURITY,
    ),
    fastplug(
        "hsecr",
        "hfullr + security, the rate limit on Redis",
        [*HOT_FULL, "security"],
        HOT_FULL_EXTRA + HOT_CACHE + 'backend = "redis"\n' + HOT_SECURITY + 'backend = "redis"\n',
    ),
)
TARGETS.update({t.name: t for t in ISSUE14_TARGETS})
OPT_IN_TARGETS.update(t.name for t in ISSUE14_TARGETS)

# issue 16: the full stack with the profiling plugin as production runs it (loop lag and the
# watchdog, slow requests on the metrics plugin's hook; no on-demand profiles)
ISSUE16_TARGETS = (
    fastplug(
        "hprof",
        "hfull + profiling (loop lag, blocking watchdog, slow-request log; on_demand off)",
        [*HOT_FULL, "profiling"],
        HOT_FULL_EXTRA
        + HOT_CACHE
        + "[default.profiling]\nloop_lag = true\nslow_request_ms = 1000\non_demand = false\n",
    ),
)
TARGETS.update({t.name: t for t in ISSUE16_TARGETS})
OPT_IN_TARGETS.update(t.name for t in ISSUE16_TARGETS)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One request wrk repeats: a path and its headers, and the body to expect."""

    name: str
    description: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    expected: bytes | None = EXPECTED_BODY  # None: every target must answer the same JSON
    targets: tuple[str, ...] | None = None  # the targets that serve it (None: all)
    reference: str = REFERENCE  # ratios are to this target
    random_ids: bool = False  # ``path`` has ``%d``: wrk picks a seeded user id per request
    count_queries: bool = False  # count the database round trips per request first
    id_range: tuple[int, int] | None = None  # random ids from this range, not the domain database's
    warm: bool = False  # request every id of ``id_range`` once before measuring (cache hits)
    unique: bool = False  # wrk adds ``?miss=N``, N never the same twice: every request a cache miss

    def serves(self, target: str) -> bool:
        """True when ``target`` serves this scenario."""
        return self.targets is None or target in self.targets


def _baseline(name: str) -> Any:
    sys.path.insert(0, str(BASELINES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BASELINES))


BENCH = _baseline("bench_data")
HOT = _baseline("hot")
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
            await connection.execute(HOT.USERS_SCHEMA)
            await connection.execute(HOT.USERS_SEED, HOT.USERS)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        asyncio.run(seed(dsn))
        yield dsn
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass(frozen=True, slots=True)
class DomainDb:
    """The seeded domain database: its DSN, the user id range and how it was seeded."""

    dsn: str
    ids: tuple[int, int]
    seeded_by: str
    counts: dict[str, int]


DOMAIN_TABLES = ("users", "products", "orders", "order_items")


def _admin(statement: str, *args: Any, fetch: bool = False) -> Any:
    """One statement on the admin database (``$BENCH_PG_ADMIN``)."""
    import asyncio

    import asyncpg

    async def run() -> Any:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            return await (connection.fetchval if fetch else connection.execute)(statement, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


def _manage(settings: Path, *command: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """``manage.py --settings FILE ...`` in a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTPLUG_")}
    env["FASTPLUG_ENV"] = "development"
    cmd = [sys.executable, "manage.py", "--settings", str(settings), *command]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def seed_signature(args: argparse.Namespace) -> str:
    """What a reused database must have been seeded with."""
    return f"fastplug-bench users={args.seed_users} products={args.seed_products} opu={args.seed_orders_per_user}"


@contextmanager
def domain_database(args: argparse.Namespace, workdir: Path) -> Iterator[DomainDb]:
    """A PostgreSQL database migrated (``manage.py db upgrade``) and seeded (``manage.py db
    seed``, or the built-in seeder); dropped afterwards unless ``--domain-db`` names one to keep."""
    name = args.domain_db or f"fastplug_bench_domain_{os.getpid()}"
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    settings = workdir / "domain-seed.toml"
    plugins = ", ".join(f'"{p}"' for p in DOMAIN_PLUGINS)
    settings.write_text(
        f'[default]\nplugins = [{plugins}]\n[default.db]\nurl = "{_async_url(dsn)}"\nauto_migrate = false\n'
        '[default.tasks]\nbroker_url = "memory://"\nembedded_worker = false\n'
    )
    exists = _admin("SELECT 1 FROM pg_database WHERE datname = $1", name, fetch=True)
    comment = exists and _admin(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", name, fetch=True
    )
    try:
        if comment == seed_signature(args):
            seeded_by = "reused"
            print(f"domain database {name}: reusing ({comment})", file=sys.stderr, flush=True)
        else:
            if exists:
                _admin(f'DROP DATABASE "{name}" WITH (FORCE)')
            _admin(f'CREATE DATABASE "{name}"')
            done = _manage(settings, "db", "upgrade")
            if done.returncode != 0:
                raise BenchError(f"manage.py db upgrade failed:\n{done.stdout}{done.stderr}")
            seeded_by = seed(args, settings, dsn)
            if args.domain_db:
                _admin(f"COMMENT ON DATABASE \"{name}\" IS '{seed_signature(args)}'")
        ids, counts = _domain_counts(dsn)
        print(f"domain database {name}: {counts} (seeded by {seeded_by})", file=sys.stderr, flush=True)
        yield DomainDb(dsn, ids, seeded_by, counts)
    finally:
        if not args.domain_db:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(args: argparse.Namespace, settings: Path, dsn: str) -> str:
    """``manage.py db seed`` (the shipped seeders); the built-in one if asked, or if that
    command does not exist yet and ``--seed auto``. Returns which one ran."""
    if args.seed in ("auto", "manage"):
        sizes = ["--users", str(args.seed_users), "--products", str(args.seed_products)]
        sizes += ["--orders-per-user", str(args.seed_orders_per_user)]
        started = time.monotonic()
        done = _manage(settings, "db", "seed", *sizes)
        if done.returncode == 0:
            print(f"manage.py db seed: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
            return "manage.py db seed " + " ".join(sizes)
        missing = "No such command" in done.stderr
        if args.seed == "manage" or not missing:
            raise BenchError(f"manage.py db seed failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        print("warning: manage.py db seed does not exist yet; using the built-in seeder", file=sys.stderr)
    import asyncio

    asyncio.run(builtin_seed(dsn, args.seed_users, args.seed_products, args.seed_orders_per_user))
    return "built-in seeder (benchmarks/run.py)"


async def builtin_seed(dsn: str, users: int, products: int, orders_per_user: int) -> None:
    """Deterministic rows in the migrated tables with COPY: 1-4 items per order."""
    import random
    from datetime import timedelta
    from decimal import Decimal

    import asyncpg

    rng = random.Random(7)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    words = ["steel", "oak", "linen", "copper", "matte", "compact", "deluxe", "classic", "rugged", "portable"]
    categories = ("tools", "garden", "kitchen", "office", "outdoor")
    prices = [Decimal(rng.randrange(100, 50_000)) / 100 for _ in range(products)]
    product_rows = [
        (i, f"SKU-{i:08d}", " ".join(rng.sample(words, 3)).title(), " ".join(rng.choices(words, k=12)),
         categories[i % 5], prices[i - 1], rng.randrange(0, 500), now - timedelta(days=i % 365), now)
        for i in range(1, products + 1)
    ]  # fmt: skip
    user_rows = [(i, f"user{i}@example.com", f"User {i}", now - timedelta(minutes=i)) for i in range(1, users + 1)]
    order_rows, item_rows = [], []
    for order_id in range(1, users * orders_per_user + 1):
        lines = []
        for _ in range(rng.randint(1, 4)):
            product = rng.randrange(1, products + 1)
            lines.append((len(item_rows) + len(lines) + 1, order_id, product, rng.randint(1, 3), prices[product - 1]))
        item_rows += lines
        total = sum((q * price for *_, q, price in lines), Decimal(0))
        user = (order_id - 1) // orders_per_user + 1
        order_rows.append((order_id, user, "placed", total, now - timedelta(hours=order_id % 1000)))
    connection = await asyncpg.connect(dsn)
    try:
        for table, rows in zip(DOMAIN_TABLES, (user_rows, product_rows, order_rows, item_rows), strict=True):
            await connection.copy_records_to_table(table, records=rows)
            await connection.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {len(rows)})")
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def _domain_counts(dsn: str) -> tuple[tuple[int, int], dict[str, int]]:
    """The lowest and highest user id, and the rows per table."""
    import asyncio

    import asyncpg

    async def run() -> tuple[tuple[int, int], dict[str, int]]:
        connection = await asyncpg.connect(dsn)
        try:
            low, high = await connection.fetchrow("SELECT min(id), max(id) FROM users")
            counts = {t: await connection.fetchval(f"SELECT count(*) FROM {t}") for t in DOMAIN_TABLES}
        finally:
            await connection.close()
        if low is None:
            raise BenchError("the seeded domain database has no users")
        return (int(low), int(high)), counts

    return asyncio.run(run())


def _async_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


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

LIST_TARGETS = ("fastapi", "fastapi_models", "serialize", "serialize_dicts", "rawjson")
DOMAIN_TARGETS = ("fp_domain", "bare", "recipe")
for _scenario in (
    Scenario(
        "list20k",
        "GET /bench/list20k: the 20,283-byte page of 60 records, serialized per request",
        "/bench/list20k",
        (),
        _json20k(),
        LIST_TARGETS,
        "fastapi",
    ),
    Scenario(
        "products",
        "GET /products?limit=100 on the seeded database",
        "/products?limit=100",
        (),
        None,
        ("fastapi", "fp_products", "fp_cached"),
        "fastapi",
        count_queries=True,
    ),
    Scenario(
        "user",
        "GET /users/{id}, a random seeded id per request",
        "/users/%d",
        (),
        None,
        DOMAIN_TARGETS,
        "bare",
        random_ids=True,
        count_queries=True,
    ),
    Scenario(
        "user_orders",
        "GET /users/{id}/orders (orders, items, products), a random seeded id per request",
        "/users/%d/orders",
        (),
        None,
        DOMAIN_TARGETS,
        "bare",
        random_ids=True,
        count_queries=True,
    ),
):
    SCENARIOS[_scenario.name] = _scenario
DOMAIN_SCENARIOS = {"products", "user", "user_orders"}

HOT_APPS = ("hbare", "hcore", "hfull", "litestar")
HOT_USERS = (1, 10_000)
for _scenario in (
    Scenario(
        "hello", "GET /hello: response_model, a dict returned", "/hello", (), HOT.dumps(HOT.HELLO), HOT_APPS, "hbare"
    ),
    Scenario(
        "onerow",
        "GET /users/{id}: one row on a raw asyncpg pool, 10,000 random ids",
        "/users/%d",
        (),
        None,
        HOT_APPS,
        "hbare",
        random_ids=True,
        id_range=HOT_USERS,
    ),
    Scenario(
        "big",
        "GET /big: response_model=list[Item], 200 dicts returned",
        "/big",
        (),
        HOT.dumps(HOT.BIG),
        HOT_APPS,
        "hbare",
    ),
    Scenario(
        "big_gzip",
        "GET /big, Accept-Encoding: gzip",
        "/big",
        GZIP_ACCEPTED,
        HOT.dumps(HOT.BIG),
        ("hbare", "hfull", "litestar"),
        "litestar",
    ),
    Scenario(
        "big_trusted",
        "GET /big/trusted: the same list sent without validation (fastplug.core.trusted)",
        "/big/trusted",
        (),
        HOT.dumps(HOT.BIG),
        ("hcore", "hfull"),
        "hcore",
    ),
    Scenario(
        "hit10k",
        "GET /cached/users/{id}: cache hits over 10,000 warmed ids (bare: GET /hello)",
        "/cached/users/%d",
        (),
        None,
        ("hfull", "hfullr"),
        "hfull",
        random_ids=True,
        id_range=HOT_USERS,
        warm=True,
    ),
    Scenario(
        "hit100k",
        "GET /cached/users/{id}: cache hits over 100,000 warmed ids",
        "/cached/users/%d",
        (),
        None,
        ("hfull", "hfullr"),
        "hfull",
        random_ids=True,
        id_range=(1, HOT.USERS),
        warm=True,
    ),
    Scenario(
        "miss",
        "GET /cached/users/{id}?miss=N: every request a cache miss (a query never sent before), 10,000 random ids",
        "/cached/users/%d",
        (),
        None,
        ("hfull", "hfullr"),
        "hfull",
        random_ids=True,
        id_range=HOT_USERS,
        unique=True,
    ),
    Scenario(
        "hello_sec",
        "GET /hello with and without the security plugin",
        "/hello",
        (),
        HOT.dumps(HOT.HELLO),
        ("hfull", "hsec", "hfullr", "hsecr"),
        "hfull",
    ),
    Scenario(
        "hello_prof",
        "GET /hello with and without the profiling plugin",
        "/hello",
        (),
        HOT.dumps(HOT.HELLO),
        ("hfull", "hprof"),
        "hfull",
    ),
    Scenario(
        "hit_sec",
        "GET /cached/users/{id}: cache hits over 10,000 warmed ids, with and without the security plugin",
        "/cached/users/%d",
        (),
        None,
        ("hfull", "hsec", "hfullr", "hsecr"),
        "hfull",
        random_ids=True,
        id_range=HOT_USERS,
        warm=True,
    ),
):
    SCENARIOS[_scenario.name] = _scenario
HOT_DB_SCENARIOS = {"onerow", "hit10k", "hit100k", "miss", "hit_sec"}

# (scenario, target, against, goal): the issue's targets, reported as ratios of req/s
COMPARISONS = (
    ("small", "stack", "bare", 0.85),
    ("small", "stack", "recipe", 4.0),
    ("small", "gzip", "fastplug", 0.97),
    ("json20k", "gzip", "stgzip", 1.15),
    ("json20k", "stack", "recipe", None),
    ("list20k", "serialize", "fastapi", 3.8),
    ("list20k", "serialize_dicts", "fastapi", 3.8),
    ("list20k", "serialize", "fastapi_models", None),
    ("list20k", "rawjson", "fastapi", None),
    ("products", "fp_products", "fastapi", 2.0),
    ("products", "fp_cached", "fastapi", 2.0),
    ("user", "fp_domain", "bare", None),
    ("user", "fp_domain", "recipe", None),
    ("user_orders", "fp_domain", "bare", None),
    ("user_orders", "fp_domain", "recipe", None),
    # issue 12
    ("hello", "hcore", "hbare", 0.97),
    ("hello", "hfull", "hbare", 1.0),
    ("hello", "litestar", "hbare", None),
    ("onerow", "hcore", "hbare", 0.97),
    ("onerow", "hfull", "hbare", 1.0),
    ("onerow", "litestar", "hbare", None),
    ("big", "hcore", "hbare", 1.7),
    ("big", "hfull", "hbare", 1.7),
    ("big", "litestar", "hbare", None),
    ("big_gzip", "hfull", "litestar", 1.3),
    ("big_trusted", "hfull", "big:litestar", 1.0),
    ("big_trusted", "hcore", "big:litestar", 1.0),
    ("hit10k", "hfull", "hello:hbare", 2.5),
    ("hit10k", "hfullr", "hello:hbare", 1.6),
    ("hit100k", "hfull", "hello:hbare", 2.5),
    ("hit100k", "hfullr", "hello:hbare", 1.6),
    ("miss", "hfull", "onerow:hfull", 0.95),
    ("miss", "hfullr", "onerow:hfull", 0.95),
    # issue 14: the security plugin costs at most 5%
    ("hello_prof", "hprof", "hfull", 0.97),
    ("hello_sec", "hsec", "hfull", 0.95),
    ("hello_sec", "hsecr", "hfullr", 0.95),
    ("hit_sec", "hsec", "hfull", 0.95),
    ("hit_sec", "hsecr", "hfullr", 0.95),
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
    """The uvicorn command line for ``target``; fastplug targets are served as ``manage.py
    serve`` serves them (fastplug's own HTTP protocol, ``baselines/fastplug_serve.py``)."""
    if target.settings is not None:
        return [*pinned(SERVER_CPU, pin), sys.executable, str(BASELINES / "fastplug_serve.py"), str(port)]
    cmd = [*pinned(SERVER_CPU, pin), sys.executable, "-m", "uvicorn", target.app]
    cmd += ["--host", HOST, "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    cmd += loop_options()
    if target.factory:
        cmd.append("--factory")
    if target.app_dir is not None:
        cmd += ["--app-dir", str(target.app_dir)]
    return cmd


def server_env(target: Target, workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without stray ``FASTPLUG_*`` variables; fastplug gets its own settings file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTPLUG_", "PROMETHEUS_MULTIPROC"))}
    env.update(extra or {})
    if target.settings is not None:
        settings = workdir / f"{target.name}.toml"
        settings.write_text(target.settings)
        env["FASTPLUG_SETTINGS"] = str(settings)
        env["FASTPLUG_ENV"] = "development"
        if target.database == "domain" and "BENCH_DOMAIN_DSN" in env:
            env["FASTPLUG_DB__URL"] = _async_url(env["BENCH_DOMAIN_DSN"])
        elif "BENCH_PG_DSN" in env:  # the db plugin reads the seeded database
            env["FASTPLUG_DB__URL"] = _async_url(env["BENCH_PG_DSN"])
    return env


def start_server(
    target: Target, port: int, workdir: Path, pin: bool, extra_env: dict[str, str] | None = None
) -> Server:
    """Start ``target`` in its own session (so it can be stopped as a group)."""
    log = workdir / f"{target.name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            server_command(target, port, pin),
            cwd=ROOT,
            env=server_env(target, workdir, extra_env),
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


def fetch(server: Server, path: str, headers: Sequence[tuple[str, str]] = ()) -> tuple[int, bytes, str, dict[str, str]]:
    """One GET: status, decoded body, how it came back (``gzip, 4,665 bytes``), headers."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10.0)
    try:
        conn.request("GET", path, headers=dict(headers))
        response = conn.getresponse()
        raw, encoding = response.read(), response.getheader("content-encoding", "")
    except OSError as exc:
        raise BenchError(f"{server.target.name}: GET {path} failed: {exc}") from exc
    finally:
        conn.close()
    body = gzip.decompress(raw) if encoding == "gzip" else raw
    return response.status, body, f"{encoding or 'identity'}, {len(raw):,} bytes", dict(response.getheaders())


def check_paths(scenario: Scenario, ids: tuple[int, int] | None) -> list[str]:
    """The requests the check sends: the path, or the first and last seeded ids."""
    if not scenario.random_ids:
        return [scenario.path]
    ids = scenario.id_range or ids
    if ids is None:
        raise BenchError(f"{scenario.name} needs the seeded domain database")
    return [scenario.path % ids[0], scenario.path % ids[1]]


def check_scenario(
    servers: dict[str, Server], scenario: Scenario, ids: tuple[int, int] | None = None
) -> dict[str, str]:
    """Send the scenario's request(s) once to every target serving it: 200 and the expected
    body, or (``expected=None``) the same JSON from every target. Returns how each came back."""
    answers: dict[str, str] = {}
    for path in check_paths(scenario, ids):
        first: tuple[str, Any] | None = None
        for name, server in servers.items():
            if not scenario.serves(name):
                continue
            status, body, how, _ = fetch(server, path, scenario.headers)
            answers[name] = how
            if status != 200 or (scenario.expected is not None and body != scenario.expected):
                raise BenchError(f"{name}: GET {path} answered {status} {body[:80]!r}")
            if scenario.expected is None:
                parsed = json.loads(body)
                if first is None:
                    first = (name, parsed)
                elif parsed != first[1]:
                    raise BenchError(
                        f"{name} and {first[0]} answer GET {path} differently:\n"
                        f"  {first[0]}: {json.dumps(first[1])[:400]}\n  {name}: {body[:400]!r}"
                    )
    return answers


def wrk_script(scenario: Scenario, ids: tuple[int, int], workdir: Path) -> Path:
    """A wrk Lua script requesting ``scenario.path % id`` for ids drawn from the seeded range;
    the same fixed seed for every target, so every target gets the same sequence."""
    ids = scenario.id_range or ids
    script = workdir / f"{scenario.name}.lua"
    if scenario.unique:  # a query no request had before: the run's start (us) plus a counter
        fmt, unique = scenario.path + "?miss=%.0f", ", os.time() * 1000000 + counter"
        count = "  counter = counter + 1\n"
    else:
        fmt, unique, count = scenario.path, "", ""
    script.write_text(
        f"local low, high = {ids[0]}, {ids[1]}\n"
        f'local fmt = "{fmt}"\n'
        "local counter = 0\n"
        "math.randomseed(7)\n"
        "request = function()\n"
        f"{count}"
        f'  return wrk.format("GET", string.format(fmt, math.random(low, high){unique}))\n'
        "end\n"
    )
    return script


WARM_THREADS = 8


def warm(servers: dict[str, Server], scenario: Scenario) -> None:
    """Request every id of ``scenario.id_range`` once on every target serving it, with the
    headers wrk sends (its Host, no Accept-Encoding: the variant the load asks for), then
    check that a sample of them are hits."""
    from concurrent.futures import ThreadPoolExecutor

    assert scenario.id_range is not None
    low, high = scenario.id_range

    def fill(server: Server, ids: range) -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=30.0)
        try:
            for i in ids:
                conn.putrequest("GET", scenario.path % i, skip_accept_encoding=True)
                for name, value in scenario.headers:
                    conn.putheader(name, value)
                conn.endheaders()
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise BenchError(f"{server.target.name}: warming GET {scenario.path % i}: {response.status}")
        finally:
            conn.close()

    for name, server in servers.items():
        if not scenario.serves(name):
            continue
        started = time.monotonic()
        step = (high - low + 1 + WARM_THREADS - 1) // WARM_THREADS
        chunks = [range(a, min(a + step, high + 1)) for a in range(low, high + 1, step)]
        with ThreadPoolExecutor(WARM_THREADS) as pool:
            list(pool.map(fill, [server] * len(chunks), chunks))
        for i in (low, (low + high) // 2, high):
            conn = http.client.HTTPConnection(HOST, server.port, timeout=10.0)
            try:
                conn.putrequest("GET", scenario.path % i, skip_accept_encoding=True)
                conn.endheaders()
                response = conn.getresponse()
                response.read()
                label = response.getheader("x-cache")
            finally:
                conn.close()
            if label != "HIT":
                raise BenchError(f"{name}: GET {scenario.path % i} after warming: x-cache {label!r}, not HIT")
        print(
            f"warmed {name} {scenario.name}: {high - low + 1:,} ids in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )


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
def running(
    targets: Sequence[Target], workdir: Path, pin: bool, extra_env: dict[str, str] | None = None
) -> Iterator[dict[str, Server]]:
    """Start every target, wait until each answers, stop them all on the way out."""
    servers: dict[str, Server] = {}
    try:
        for target, port in zip(targets, free_ports(len(targets)), strict=True):
            sub = workdir / target.name
            sub.mkdir(parents=True)
            servers[target.name] = start_server(target, port, sub, pin, extra_env)
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
    url: str,
    duration: int,
    connections: int,
    threads: int,
    pin: bool,
    headers: Sequence[tuple[str, str]] = (),
    script: Path | None = None,
) -> WrkResult:
    """One wrk run against ``url`` (127.0.0.1 only; ``script``: a Lua request generator),
    bounded by a timeout."""
    if not url.startswith(f"http://{HOST}:"):
        raise BenchError(f"refusing to send traffic to {url}: only {HOST} is allowed")
    cmd = [*pinned(CLIENT_CPU, pin), "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers:
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
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


def measure(
    server: Server, scenario: Scenario, args: argparse.Namespace, pin: bool, script: Path | None = None
) -> WrkResult:
    """Warm the server up, then drive it with wrk; fail if it died meanwhile."""
    url = server.url("/" if script is not None else scenario.path)
    if args.warmup > 0:
        run_wrk(url, args.warmup, args.connections, args.threads, pin, scenario.headers, script)
    result = run_wrk(url, args.duration, args.connections, args.threads, pin, scenario.headers, script)
    if server.proc.poll() is not None:
        raise BenchError(f"{server.target.name} died during the run:\n{server.log_tail()}")
    return result


Results = dict[str, dict[str, list[WrkResult]]]  # scenario -> target -> one run per round


def run_rounds(
    servers: dict[str, Server],
    scenarios: Sequence[Scenario],
    args: argparse.Namespace,
    pin: bool,
    scripts: dict[str, Path] | None = None,
) -> Results:
    """Per round, every scenario on every target serving it, in rotated order; progress goes
    to stderr. ``scripts``: the wrk Lua script of each random-id scenario."""
    results: Results = {s.name: {name: [] for name in servers if s.serves(name)} for s in scenarios}
    for number, order in enumerate(schedule(list(servers), args.rounds), start=1):
        for scenario in scenarios:
            for name in order:
                if not scenario.serves(name):
                    continue
                result = measure(servers[name], scenario, args, pin, (scripts or {}).get(scenario.name))
                results[scenario.name][name].append(result)
                print(
                    f"round {number}/{args.rounds}  {scenario.name:<11} {name:<15} {result.rps:>10,.0f} req/s  "
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


COUNT_REQUESTS = 20
COUNT_ENV = {"BENCH_COUNT_QUERIES": "1", "FASTPLUG_DB__QUERY_COUNT_HEADER": "true"}
QueryCounts = dict[str, dict[str, dict[str, Any]]]  # scenario -> target -> figures per request


def count_queries(
    targets: Sequence[Target], scenarios: Sequence[Scenario], workdir: Path, ids: tuple[int, int] | None
) -> QueryCounts:
    """What each request sends to PostgreSQL, per target: separate servers started with
    ``$BENCH_COUNT_QUERIES=1`` (``baselines/querycount.py`` counts asyncpg executions per
    request; fastplug also gets ``[db] query_count_header``), a few warm-up requests, then
    ``COUNT_REQUESTS`` requests one at a time (ids spread over the seeded range)."""
    out: QueryCounts = {}
    with running(targets, workdir, pin=False, extra_env=COUNT_ENV) as servers:
        for scenario in scenarios:
            if scenario.random_ids and ids is not None:
                step = max((ids[1] - ids[0]) // COUNT_REQUESTS, 1)
                paths = [scenario.path % min(ids[0] + i * step, ids[1]) for i in range(COUNT_REQUESTS)]
            else:
                paths = [scenario.path] * COUNT_REQUESTS
            for name, server in servers.items():
                if not scenario.serves(name):
                    continue
                for path in paths[:3]:  # warm the statement caches (and fill a response cache)
                    fetch(server, path)
                fetch(server, "/__bench/queries?reset=1")
                headers = []
                for path in paths:
                    status, body, _, response_headers = fetch(server, path)
                    if status != 200:
                        raise BenchError(f"{name}: GET {path} answered {status} {body[:80]!r}")
                    lowered = {k.lower(): v for k, v in response_headers.items()}
                    if "x-db-queries" in lowered:
                        headers.append(int(lowered["x-db-queries"]))
                totals = json.loads(fetch(server, "/__bench/queries")[1])
                n = totals["requests"] or 1
                out.setdefault(scenario.name, {})[name] = {
                    "requests": totals["requests"],
                    "statements": totals["statements"] / n,
                    "round_trips": totals["round_trips"] / n,
                    "kinds": {k: v / n for k, v in totals["kinds"].items()},
                    "x_db_queries": statistics.mean(headers) if headers else None,
                }
    return out


def queries_table(counts: dict[str, dict[str, Any]]) -> str:
    """Per target: SQL statements and round trips per request, by kind."""
    head = ["target", "SQL statements / req", "round trips / req", "by kind (per request)", "X-DB-Queries"]
    rows = [head]
    for name, c in counts.items():
        kinds = " ".join(f"{k} {v:g}" for k, v in c["kinds"].items()) or "-"
        header = "-" if c["x_db_queries"] is None else f"{c['x_db_queries']:g}"
        rows.append([name, f"{c['statements']:g}", f"{c['round_trips']:g}", kinds, header])
    return markdown(rows)


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
        other_scenario, _, other = against.rpartition(":")  # "hello:hbare": another scenario's runs
        other_runs = results.get(other_scenario, {}) if other_scenario else runs
        if target not in runs or other not in other_runs:
            continue
        a, b = [r.rps for r in runs[target]], [r.rps for r in other_runs[other]]
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


def table(
    summaries: Sequence[Summary], results: dict[str, list[WrkResult]] | None = None, reference: str = REFERENCE
) -> str:
    """A fixed-width text table (also valid Markdown)."""
    ref = reference
    head = ["target", "req/s (median)", "req/s min-max", "p50 ms", "p90 ms", "p99 ms", f"req/s / {ref}"]
    head += [f"p99 / {ref}", f"per-round req/s / {ref}", "bytes/resp", "errors"]
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
        default=None,
        help=f"comma-separated, from {', '.join(TARGETS)} (default: the scenarios' own targets, "
        "else every target that is not opt-in)",
    )
    parser.add_argument(
        "--scenarios",
        default="small,json20k",
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default small,json20k)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    domain = parser.add_argument_group("issue 7: the seeded domain database (products, user, user_orders)")
    domain.add_argument("--seed-users", type=int, default=10_000, help="manage.py db seed --users (default 10000)")
    domain.add_argument("--seed-products", type=int, default=1_000, help="--products (default 1000)")
    domain.add_argument("--seed-orders-per-user", type=int, default=5, help="--orders-per-user (default 5)")
    domain.add_argument(
        "--seed",
        choices=("auto", "manage", "builtin"),
        default="auto",
        help="manage: `manage.py db seed`; builtin: the harness's own COPY seeder; auto (default): "
        "manage, or builtin while that command does not exist",
    )
    domain.add_argument(
        "--domain-db",
        metavar="NAME",
        help="keep and reuse this database (name must start with fastplug_bench_; reseeded when the "
        "seed sizes differ); default: a fresh one per run, dropped at the end",
    )
    domain.add_argument("--no-count", action="store_true", help="skip counting the queries per request")
    args = parser.parse_args(argv)
    if args.targets is None:
        scenarios = [SCENARIOS[s.strip()] for s in args.scenarios.split(",") if s.strip() in SCENARIOS]
        own = [t for s in scenarios if s.targets is not None for t in s.targets]
        if any(s.targets is None for s in scenarios) or not own:
            own = [t for t in TARGETS if t not in OPT_IN_TARGETS] + own
        args.targets = ",".join(dict.fromkeys(own))
    if args.domain_db is not None and not re.fullmatch(r"fastplug_bench_\w+", args.domain_db):
        parser.error("--domain-db must be a name starting with fastplug_bench_ (it may be dropped and recreated)")
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
    idle = [t for t in args.targets if not any(s.serves(t) for s in scenarios)]
    if idle:
        print(f"note: {', '.join(idle)} serve none of the scenarios; not started", file=sys.stderr)
    targets = [TARGETS[t] for t in args.targets if t not in idle]
    answers: dict[str, dict[str, str]] = {}
    counts: QueryCounts = {}
    domain: DomainDb | None = None
    try:
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fastplug-bench-")))
            if "hfullr" in args.targets:
                stack.callback(drop_redis_keys, HOT_CACHE_PREFIX)
            wanted = {"row"} | HOT_DB_SCENARIOS
            dsn = stack.enter_context(bench_database() if wanted & set(args.scenarios) else nullcontext())
            stack.enter_context(_environ("BENCH_PG_DSN", dsn))
            if DOMAIN_SCENARIOS & set(args.scenarios):
                domain = stack.enter_context(domain_database(args, tmp))
                stack.enter_context(_environ("BENCH_DOMAIN_DSN", domain.dsn))
            ids = domain.ids if domain is not None else None
            counted = [s for s in scenarios if s.count_queries]
            if counted and not args.no_count:
                db_targets = [t for t in targets if any(s.serves(t.name) for s in counted)]
                counts = count_queries(db_targets, counted, tmp / "count", ids)
            servers = stack.enter_context(running(targets, tmp / "bench", pin))
            for scenario in scenarios:
                answers[scenario.name] = check_scenario(servers, scenario, ids)
            for scenario in scenarios:
                if scenario.warm:
                    warm(servers, scenario)
            scripts = {
                s.name: wrk_script(s, ids, tmp) for s in scenarios if s.random_ids and (s.id_range or ids) is not None
            }
            results = run_rounds(servers, scenarios, args, pin, scripts)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    summaries = {name: summarize(by_target, name, SCENARIOS[name].reference) for name, by_target in results.items()}
    compared = comparisons(results)
    meta = metadata(args, pin)
    print(f"\n{meta['date']}  {meta['machine']['cpus']} CPUs ({meta['machine']['cpu']})  {meta['command']}")
    print(f"{meta['server']}; wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency")
    for scenario in scenarios:
        print(f"\n{scenario.name}: {scenario.description}")
        print(table(summaries[scenario.name], results[scenario.name], scenario.reference))
        print("  answers: " + "; ".join(f"{n}: {a}" for n, a in answers[scenario.name].items()))
        if scenario.name in counts:
            print(
                f"\n{scenario.name}: database work per request ({COUNT_REQUESTS} requests one at a time, after warm-up)"
            )
            print(queries_table(counts[scenario.name]))
    if compared:
        print("\n" + comparison_table(compared))
    print()
    for name in args.targets:
        print(f"  {name}: {TARGETS[name].description}")
    if domain is not None:
        print(f"  domain database: {domain.counts}, user ids {domain.ids[0]}-{domain.ids[1]}, {domain.seeded_by}")
        meta["domain_database"] = {"rows": domain.counts, "user_ids": domain.ids, "seeded_by": domain.seeded_by}
    if args.json:
        meta["answers"] = answers
        meta["queries_per_request"] = counts
        args.json.write_text(json.dumps(report(summaries, results, compared, meta), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
