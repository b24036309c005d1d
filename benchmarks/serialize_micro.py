"""Where the time of a list route goes (issue 7), in-process: no server, no socket, no wrk.

1. Serialization alone, the 20 KB page of ``baselines/payload.py``: FastAPI 0.165's
   response path (the route's own ``response_field``: ``validate`` then ``serialize_json``),
   FastAPI's path before its ``dump_json`` fast path (``validate``, ``serialize`` to Python,
   ``json.dumps``), ``core.serialize`` from models and from dicts, ``json.dumps``.
2. The whole ASGI request in-process (routing, dependencies, response), same page, per app.
3. With ``--db`` (a seeded domain database, e.g. the one ``run.py --domain-db NAME`` keeps):
   ``GET /products?limit=100`` in-process on FastAPI's default path and on fastplug's
   products plugin (cache off), and its parts: the query with ORM loading of 101 rows,
   FastAPI's validate + dump of them, ``core.serialize``'s ``from_attributes`` + dump.

Figures are the best of ``--repeat`` runs of ``--number`` calls, in microseconds per call.

    .venv/bin/python benchmarks/serialize_micro.py --cpu 0
    .venv/bin/python benchmarks/serialize_micro.py --cpu 0 --db postgresql://postgres@127.0.0.1:5432/fastplug_bench_domain
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "benchmarks" / "baselines"
sys.path[:0] = [str(BASELINES), str(ROOT)]

import domain  # noqa: E402
from pydantic import TypeAdapter  # noqa: E402

from fastplug.core.serialize import serializer  # noqa: E402


def best_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Best per-call time of ``fn`` over ``repeat`` runs of ``number`` calls, in us."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


async def best_us_async(fn: Callable[[], Awaitable[Any]], number: int, repeat: int) -> float:
    """:func:`best_us` for a coroutine function."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            await fn()
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


def route_field(app: Any, path: str) -> Any:
    """The ``response_field`` FastAPI built for ``path`` (what ``serialize_response`` uses)."""
    return next(r for r in app.router.routes if getattr(r, "path", None) == path).response_field


def serialization(number: int, repeat: int) -> list[tuple[str, float]]:
    """Part 1: the 20 KB page, serialization only."""
    import fastapi_app

    field = route_field(fastapi_app.create(models=False), domain.LIST_PATH)
    data = domain.page_dict()
    models = domain.Page.model_validate(data)
    loc = ("response",)
    as_models, as_dicts = serializer(domain.Page), serializer(domain.PageDict)
    adapter = TypeAdapter(domain.Page)

    def fastapi_now() -> bytes:
        value, _ = field.validate(data, {}, loc=loc)
        return field.serialize_json(value)

    def fastapi_models() -> bytes:
        value, _ = field.validate(models, {}, loc=loc)
        return field.serialize_json(value)

    def fastapi_before() -> bytes:
        value, _ = field.validate(data, {}, loc=loc)
        return json.dumps(field.serialize(value), separators=(",", ":")).encode()

    assert fastapi_now() == fastapi_before() == as_models.dump(models) == as_dicts.dump(data)
    return [
        ("FastAPI 0.165 path, dicts: validate + serialize_json", best_us(fastapi_now, number, repeat)),
        ("  of which validate (dicts -> Page)", best_us(lambda: field.validate(data, {}, loc=loc), number, repeat)),
        ("FastAPI 0.165 path, Page models: validate + serialize_json", best_us(fastapi_models, number, repeat)),
        ("FastAPI before dump_json: validate + serialize + json.dumps", best_us(fastapi_before, number, repeat)),
        ("core.serialize from Page models (dump_json only)", best_us(lambda: as_models.dump(models), number, repeat)),
        ("core.serialize from dicts (TypedDict dump_json)", best_us(lambda: as_dicts.dump(data), number, repeat)),
        ("pydantic model_validate + dump_json, dicts", best_us(lambda: adapter.dump_json(domain.Page.model_validate(data)), number, repeat)),  # noqa: E501
        ("json.dumps(dicts) (stdlib C encoder)", best_us(lambda: json.dumps(data, separators=(",", ":")), number, repeat)),  # noqa: E501
    ]  # fmt: skip


class Asgi:
    """Drives an ASGI app in-process: lifespan started once, then GET requests."""

    def __init__(self, app: Any) -> None:
        self.app, self.state = app, {}
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the app's lifespan startup (if it has one)."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self.task = asyncio.create_task(self.app(scope, self.queue.get, self.sent.put))
        await self.queue.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(self.sent.get(), 30)
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message}")

    async def stop(self) -> None:
        """Run the lifespan shutdown."""
        await self.queue.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self.sent.get(), 30)
        if self.task is not None:
            await self.task

    async def get(self, path: str) -> tuple[int, bytes]:
        """One GET; the status and the body."""
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": dict(self.state),
        }
        parts: list[bytes] = []
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                parts.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(parts)


def fastplug_app(settings: str) -> Any:
    """The fastplug benchmark app built from ``settings`` (a settings.toml text)."""
    import fastplug_app as module

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(settings)
    os.environ["FASTPLUG_SETTINGS"], os.environ["FASTPLUG_ENV"] = f.name, "development"
    return module.create()


async def requests(apps: dict[str, Any], path: str, number: int, repeat: int) -> list[tuple[str, float]]:
    """Part 2/3: per-request time of ``GET path`` on each app (all answering the same body)."""
    out, first = [], None
    for name, app in apps.items():
        client = Asgi(app)
        await client.start()
        try:
            status, body = await client.get(path)
            if status != 200 or (first is not None and json.loads(body) != first):
                raise RuntimeError(f"{name}: GET {path} answered {status} {body[:120]!r}")
            first = json.loads(body) if first is None else first
            out.append((name, await best_us_async(lambda c=client: c.get(path), number, repeat)))
        finally:
            await client.stop()
    return out


async def products_parts(dsn: str, number: int, repeat: int) -> list[tuple[str, float]]:
    """Part 3: the parts of ``GET /products?limit=100`` (query + ORM load, validation, dump)."""
    import asyncpg
    import fastapi_app
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

    engine = create_async_engine(domain.async_url(dsn), pool_size=2, max_overflow=0)
    maker = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    query = select(fastapi_app.Product).where(fastapi_app.Product.id > 0).order_by(fastapi_app.Product.id).limit(101)
    field = route_field(fastapi_app.create(models=False), "/products")
    page = serializer(domain.ProductPage)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:

        async def orm(autocommit: bool) -> list[Any]:
            async with maker() as session:
                if autocommit:
                    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                return list((await session.scalars(query)).all())

        rows = await orm(False)
        value = domain.page_of(rows, 100)
        sql = "SELECT * FROM products WHERE id > 0 ORDER BY id LIMIT 101"

        def fastapi_dump() -> bytes:
            validated, _ = field.validate(value, {}, loc=("response",))
            return field.serialize_json(validated)

        assert json.loads(fastapi_dump()) == json.loads(page.dump(value, from_attributes=True))
        return [
            ("query + ORM load of 101 rows, session with BEGIN/ROLLBACK", await best_us_async(lambda: orm(False), number, repeat)),  # noqa: E501
            ("query + ORM load of 101 rows, autocommit session (DbReadSession)", await best_us_async(lambda: orm(True), number, repeat)),  # noqa: E501
            ("raw asyncpg fetch of the same 101 rows (reference)", await best_us_async(lambda: pool.fetch(sql), number, repeat)),  # noqa: E501
            ("FastAPI: validate (from attributes) + serialize_json of the page", best_us(fastapi_dump, number, repeat)),
            ("core.serialize: dump(from_attributes=True) of the page", best_us(lambda: page.dump(value, from_attributes=True), number, repeat)),  # noqa: E501
        ]  # fmt: skip
    finally:
        await pool.close()
        await engine.dispose()


def show(title: str, rows: list[tuple[str, float]], base: float | None = None) -> None:
    """Print one part: us per call and, when ``base`` is given, ``base`` / time."""
    print(f"\n{title}")
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        ratio = f"  x{base / us:5.2f}" if base else ""
        print(f"  {name:<{width}}  {us:9.1f} us{ratio}")


async def main_async(args: argparse.Namespace) -> None:
    """Parts 2 and 3 (they need an event loop)."""
    import fastapi_app
    import raw_app

    apps = {
        "fastapi (dicts, FastAPI default path)": fastapi_app.create(models=False),
        "fastapi_models (Page models, not re-validated)": fastapi_app.create(models=True),
        "serialize (fastplug + core.serialize, models)": fastplug_app('[default]\nplugins = ["health", "bench"]\n'),
        "serialize_dicts (fastplug + core.serialize, dicts)": fastplug_app(
            '[default]\nplugins = ["health", "bench"]\n[default.bench]\nlist20k = "dicts"\n'
        ),
        "rawjson (raw ASGI + json.dumps)": raw_app.app,
    }
    rows = await requests(apps, domain.LIST_PATH, args.number, args.repeat)
    show("2. GET /bench/list20k, the whole ASGI request in-process (x: FastAPI dicts / this)", rows, rows[0][1])
    if not args.db:
        return
    os.environ["BENCH_DOMAIN_DSN"] = args.db
    url = domain.async_url(args.db)
    settings = f'[default]\nplugins = ["health", "db", "products", "bench"]\n[default.db]\nurl = "{url}"\n'
    settings += "pool_size = 2\nmax_overflow = 0\nraw_pool = { enabled = false }\n"
    apps = {
        "fastapi (session + response_model)": fastapi_app.create(models=False),
        "fp_products": fastplug_app(settings),
    }
    rows = await requests(apps, "/products?limit=100", max(args.number // 10, 20), args.repeat)
    show("3. GET /products?limit=100 in-process (x: FastAPI / this)", rows, rows[0][1])
    show("   its parts", await products_parts(args.db, max(args.number // 10, 20), args.repeat))


def main() -> None:
    """Run the parts; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=500, help="calls per run (default 500; /products: a tenth)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best counts (default 5)")
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    parser.add_argument("--db", help="a seeded domain database DSN (postgresql://...) for part 3")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    import uvloop

    rows = serialization(args.number, args.repeat)
    show("1. The 20 KB page, serialization only (x: FastAPI 0.165 path / this)", rows, rows[0][1])
    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
