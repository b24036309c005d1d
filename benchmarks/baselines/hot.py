"""Issue 12's routes: the same handlers in every app (bare FastAPI, fastplug, Litestar).

* ``GET /hello``: a small ``response_model`` route; the handler returns a dict.
* ``GET /users/{user_id}``: one row by primary key through a raw asyncpg pool, returned as a
  dict through ``response_model=User`` (``$BENCH_PG_DSN``'s ``bench_users``, seeded by
  ``benchmarks/run.py``: :data:`USERS` rows).
* ``GET /big``: ``response_model=list[Item]``, 200 dicts (about 20 KB of JSON), validated.
* ``GET /big/trusted`` (fastplug only): the same list sent without validation, the
  documented way (``fastplug.core.trusted``).
* ``GET /cached/users/{user_id}`` (fastplug's full stack only): ``/users/{id}`` marked
  ``@cached``; wrk asks for random ids of a warmed range.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel

USERS = 100_000
USERS_SCHEMA = (
    "CREATE TABLE bench_users (id integer PRIMARY KEY, email text NOT NULL, name text NOT NULL,"
    " active boolean NOT NULL)"
)
USERS_SEED = (
    "INSERT INTO bench_users SELECT i, 'user' || i || '@example.com', 'User ' || i, i % 3 <> 0"
    " FROM generate_series(1, $1) AS i"
)
USER_SQL = "SELECT id, email, name, active FROM bench_users WHERE id = $1"


class Hello(BaseModel):
    message: str
    count: int
    ok: bool


class User(BaseModel):
    id: int
    email: str
    name: str
    active: bool


class Item(BaseModel):
    id: int
    name: str
    price: float
    in_stock: bool
    tags: list[str]


HELLO: dict[str, Any] = {"message": "Hello, world", "count": 3, "ok": True}
BIG: list[dict[str, Any]] = [
    {
        "id": i,
        "name": f"item number {i}",
        "price": round(i * 1.25, 2),
        "in_stock": i % 2 == 0,
        "tags": ["alpha", "beta", "gamma"],
    }
    for i in range(200)
]


def user_body(user_id: int) -> bytes:
    """What every app answers for ``GET /users/{user_id}``."""
    active = "true" if user_id % 3 else "false"
    return (
        f'{{"id":{user_id},"email":"user{user_id}@example.com","name":"User {user_id}","active":{active}}}'
    ).encode()


def pg_dsn() -> str | None:
    """The benchmark database (``postgresql://...``), when the run seeded one."""
    return os.environ.get("BENCH_PG_DSN")


POOL_SIZE = 10
"""Connections per app's raw pool: every server's pool fits ``max_connections = 100``."""


def dumps(value: Any) -> bytes:
    """``value`` as FastAPI's JSON response body (compact, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
