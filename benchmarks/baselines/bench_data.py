"""What the database and cache benchmark routes serve, the same bytes from every target.

``bench_items`` (id, name, price, in_stock) is seeded by ``benchmarks/run.py`` in a fresh
PostgreSQL database whose DSN it passes as ``$BENCH_PG_DSN``; ``GET /bench/row/1`` returns
one row by primary key. ``GET /bench/cached`` returns ``ITEM``: cached on the targets that
cache it, computed (or pre-encoded, on bare FastAPI) elsewhere.
"""

import os

ROW_PATH = "/bench/row/1"
ROW_BODY = b'{"id":1,"name":"item 1","price":1.5,"in_stock":true}'
CACHED_PATH = "/bench/cached"
ITEM = {"id": 7, "name": "widget", "price": 9.99, "tags": ["a", "b"]}
CACHED_BODY = b'{"id":7,"name":"widget","price":9.99,"tags":["a","b"]}'
ROWS = 1000
SCHEMA = (
    "CREATE TABLE bench_items (id integer PRIMARY KEY, name text NOT NULL,"
    " price double precision NOT NULL, in_stock boolean NOT NULL)"
)


def pg_dsn() -> str | None:
    """The benchmark database (``postgresql://...``), when the run seeded one."""
    return os.environ.get("BENCH_PG_DSN")


def rows() -> list[tuple[int, str, float, bool]]:
    """The seed rows."""
    return [(i, f"item {i}", i * 1.5, i % 2 == 1) for i in range(1, ROWS + 1)]
