"""Plugin routes that take only path parameters and services answer without FastAPI's
dependency solver (``fastplug.core.lean_route``), with exactly FastAPI's responses: successes,
422s, raised HTTP errors, returned responses, response validation errors, missing services,
and ``dependency_overrides``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastplug.core import service
from fastplug.core.response_model import FastplugRoute


class Store:
    """A service: what a plugin's lifespan would yield."""

    def __init__(self) -> None:
        self.rows = {1: {"id": 1, "name": "one", "note": None}, 2: {"id": 2, "name": "two", "note": "x"}}


StoreDep = service("test.store", Store)


class Row(BaseModel):
    id: int
    name: str
    note: str | None = None


def build(route_class: type, with_service: bool = True) -> FastAPI:
    """One app with the routes below, on ``route_class``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"test.store": Store()} if with_service else {}

    app = FastAPI(lifespan=lifespan)
    app.router.route_class = route_class

    @app.get("/rows/{row_id}", response_model=Row, response_model_exclude_none=True)
    async def get_row(row_id: int, store: StoreDep) -> Any:
        row = store.rows.get(row_id)
        if row is None:
            raise HTTPException(404, "no such row", headers={"x-missing": str(row_id)})
        return row

    @app.post("/rows/{row_id}", response_model=Row, status_code=201)
    async def make_row(row_id: int) -> Any:
        return {"id": row_id, "name": f"row {row_id}"}

    @app.get("/bad/{row_id}", response_model=Row)
    async def bad_row(row_id: int) -> Any:
        return {"id": row_id}  # no name: a response validation error, FastAPI's 500

    @app.get("/raw/{word}", response_model=Row)
    async def raw(word: str) -> Response:
        return PlainTextResponse(word, headers={"x-word": word})

    @app.get("/query", response_model=Row)
    async def with_query(row_id: int = Query(1)) -> Any:  # a query parameter: FastAPI's path
        return {"id": row_id, "name": "q"}

    return app


PATHS = [
    ("GET", "/rows/1"),
    ("GET", "/rows/2"),
    ("GET", "/rows/9"),
    ("GET", "/rows/x"),
    ("GET", "/rows/99999999999999999999999"),
    ("POST", "/rows/5"),
    ("POST", "/rows/nope"),
    ("GET", "/bad/3"),
    ("GET", "/raw/hello"),
    ("GET", "/query?row_id=4"),
    ("GET", "/query?row_id=x"),
]


def answers(app: FastAPI) -> list[tuple[int, bytes, list[tuple[bytes, bytes]]]]:
    with TestClient(app, raise_server_exceptions=False) as client:
        out = []
        for method, path in PATHS:
            response = client.request(method, path)
            out.append((response.status_code, response.content, response.headers.raw))
        return out


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths FastAPI's dependency solver ran for."""
    calls: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["request"].url.path)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


def test_the_same_responses_as_fastapi_without_the_dependency_solver(solved: list[str]) -> None:
    expected = answers(build(fastapi.routing.APIRoute))
    assert len(solved) == len(PATHS)
    solved.clear()
    assert answers(build(FastplugRoute)) == expected
    # only the requests whose path parameter does not validate, and the query route, were solved
    assert solved == ["/rows/x", "/rows/nope", "/query", "/query"]
    assert [status for status, _, _ in expected] == [200, 200, 404, 422, 404, 201, 422, 500, 200, 200, 422]


def test_a_missing_service_gives_fastapis_answer() -> None:
    def missing(route_class: type) -> tuple[int, bytes]:
        with TestClient(build(route_class, with_service=False), raise_server_exceptions=False) as client:
            response = client.get("/rows/1")
            return response.status_code, response.content

    assert missing(FastplugRoute) == missing(fastapi.routing.APIRoute)


def test_dependency_overrides_are_honoured(solved: list[str]) -> None:
    app = build(FastplugRoute)
    other = Store()
    other.rows[1] = {"id": 1, "name": "overridden", "note": None}
    getter = StoreDep.__metadata__[0].dependency
    app.dependency_overrides[getter] = lambda: other
    with TestClient(app) as client:
        assert client.get("/rows/1").json() == {"id": 1, "name": "overridden"}
        app.dependency_overrides.clear()
        assert client.get("/rows/1").json() == {"id": 1, "name": "one"}
    assert solved == ["/rows/1"]  # the override went through FastAPI's solver, the next did not


def test_routes_the_lean_path_cannot_serve_keep_fastapis_app() -> None:
    from fastplug.core.lean_route import lean_app

    def full(*_: Any) -> None:
        return None

    app = build(FastplugRoute)
    routes: dict[str, Callable[..., Any]] = {
        r.path: lean_app(r, r.response_field, full)  # type: ignore[attr-defined]
        for r in app.router.routes
        if hasattr(r, "dependant")
    }
    assert routes["/query"] is full
    assert routes["/rows/{row_id}"] is not full
