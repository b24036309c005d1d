"""Count what each request sends to PostgreSQL, the same way for every target.

Only in the harness's counting pass (``$BENCH_COUNT_QUERIES=1``), never while measuring.
Every app here talks to PostgreSQL through asyncpg (the raw pool, or SQLAlchemy's asyncpg
dialect), so asyncpg's ``Connection`` and ``PreparedStatement`` are wrapped: each
statement execution (a round trip) is counted, by its first word, for the request whose
ASGI call it ran in (a context variable; SQLAlchemy awaits asyncpg in the request's task).
``SELECT``/``INSERT``/``UPDATE``/``DELETE``/``WITH`` are the request's SQL statements;
``BEGIN``, ``COMMIT``, ``ROLLBACK``, ``;`` (SQLAlchemy's ping) and asyncpg's reset on
release (``SELECT pg_advisory_unlock_all(); CLOSE ALL; ...``, one round trip) are the
rest. A prepare on a statement-cache miss is not counted (caches are warm after the
first requests).

``GET /__bench/queries`` answers the totals since the last ``?reset=1`` as JSON.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from contextvars import ContextVar
from typing import Any

Scope = dict[str, Any]
_cell: ContextVar[Counter[str] | None] = ContextVar("bench_queries", default=None)
TOTALS: dict[str, Any] = {"requests": 0, "kinds": Counter()}
STATEMENTS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
RESET_MARK = "pg_advisory_unlock_all"


def enabled() -> bool:
    """True in the harness's counting pass."""
    return os.environ.get("BENCH_COUNT_QUERIES") == "1"


def kind(query: str) -> str:
    """``SELECT``, ``BEGIN``..., ``reset`` (asyncpg's release) or ``ping`` (``;``)."""
    if RESET_MARK in query:
        return "reset"
    word = query.lstrip().split(None, 1)[0].rstrip(";").upper() if query.strip(" ;\n") else "ping"
    return word or "ping"


def _count(query: str) -> None:
    cell = _cell.get()
    if cell is not None:
        cell[kind(query)] += 1


def patch_asyncpg() -> None:
    """Wrap asyncpg's execution entry points (idempotent)."""
    from asyncpg import connection, prepared_stmt

    conn_cls: Any = connection.Connection
    if getattr(conn_cls, "_bench_counted", False):
        return
    execute, run = conn_cls.execute, conn_cls._execute

    async def counted_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # simple query protocol; with args it goes through _execute
            _count(query)
        return await execute(self, query, *args, **kwargs)

    async def counted_run(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        _count(query)
        return await run(self, query, *args, **kwargs)

    stmt_cls: Any = prepared_stmt.PreparedStatement
    bind = stmt_cls._PreparedStatement__bind_execute

    async def counted_bind(self: Any, *args: Any, **kwargs: Any) -> Any:
        _count(self.get_query())
        return await bind(self, *args, **kwargs)

    conn_cls.execute, conn_cls._execute = counted_execute, counted_run
    stmt_cls._PreparedStatement__bind_execute = counted_bind
    conn_cls._bench_counted = True


def totals() -> dict[str, Any]:
    """Requests counted and statements by kind."""
    kinds: Counter[str] = TOTALS["kinds"]
    statements = sum(n for k, n in kinds.items() if k in STATEMENTS)
    return {
        "requests": TOTALS["requests"],
        "statements": statements,
        "round_trips": sum(kinds.values()),
        "kinds": dict(sorted(kinds.items())),
    }


class CountQueries:
    """Pure ASGI, outermost: a counter per HTTP request, summed into ``TOTALS``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        patch_asyncpg()

    def __getattr__(self, name: str) -> Any:  # uvicorn and tests see the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/__bench/queries":
            if b"reset=1" in scope.get("query_string", b""):
                TOTALS["requests"], TOTALS["kinds"] = 0, Counter()
            body = json.dumps(totals()).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        cell: Counter[str] = Counter()
        token = _cell.set(cell)
        try:
            await self.app(scope, receive, send)
        finally:
            _cell.reset(token)
            TOTALS["requests"] += 1
            TOTALS["kinds"].update(cell)


def maybe_counted(app: Any) -> Any:
    """``app`` wrapped in :class:`CountQueries` in the counting pass, else ``app`` itself."""
    return CountQueries(app) if enabled() else app
