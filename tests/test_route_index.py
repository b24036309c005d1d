"""The route index picks the route FastAPI's scan would pick, and follows changes."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse
from starlette.routing import Mount

from fastplug.core.route_index import IndexedRouter, build_buckets, build_index, index_routes


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{name}")
    async def by_name(name: str) -> dict[str, str]:
        return {"param": name}

    @app.get("/items/me")  # shadowed by the route above, as in FastAPI
    async def me() -> dict[str, str]:
        return {"static": "me"}

    @app.post("/things")
    async def post_thing() -> dict[str, str]:
        return {"posted": "1"}

    @app.get("/things")
    async def get_thing() -> dict[str, str]:
        return {"got": "1"}

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.add_route("/plain", lambda request: PlainTextResponse("plain"))  # a Starlette Route: GET and HEAD

    @app.post("/users/{user_id}")
    async def post_user(user_id: int) -> dict[str, int]:
        return {"posted": user_id}

    @app.get("/{section}/latest")  # a parameter first: a candidate for every path
    async def latest(section: str) -> dict[str, str]:
        return {"latest": section}

    @app.get("/users/{user_id}/orders")
    async def orders(user_id: int) -> dict[str, int]:
        return {"orders": user_id}

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        return {"user": user_id}

    @app.get("/users/{name:path}")  # later: only what the routes above do not take
    async def user_path(name: str) -> dict[str, str]:
        return {"path": name}

    return app


def _answers(app: FastAPI) -> list[tuple[int, bytes, str | None]]:
    with TestClient(app) as client:
        requests = [
            ("GET", "/items/me"),
            ("GET", "/items/x"),
            ("GET", "/things"),
            ("POST", "/things"),
            ("DELETE", "/things"),
            ("GET", "/hello"),
            ("GET", "/hello/"),
            ("GET", "/plain"),
            ("HEAD", "/plain"),
            ("GET", "/nothing"),
            ("GET", "/users/7"),
            ("POST", "/users/7"),
            ("DELETE", "/users/7"),
            ("GET", "/users/7/orders"),
            ("GET", "/users/latest"),
            ("GET", "/items/latest"),
            ("GET", "/other/latest"),
            ("GET", "/users/x/y"),
            ("GET", "/users/x"),
            ("GET", "/users"),
        ]
        out = []
        for method, path in requests:
            answer = client.request(method, path, follow_redirects=False)
            out.append((answer.status_code, answer.content, answer.headers.get("allow")))
        return out


def test_the_index_answers_as_the_scan_does() -> None:
    indexed = _app()
    index_routes(indexed)
    assert isinstance(indexed.router, IndexedRouter)
    assert _answers(indexed) == _answers(_app())
    index = build_index(indexed.router.routes)
    assert ("/items/me", "GET") not in index  # the param route before it would take it
    assert index[("/hello", "GET")].path == "/hello"
    assert ("/plain", "HEAD") in index
    buckets = build_buckets(indexed.router.routes)
    assert [r.path for r in buckets["users"]] == [
        "/users/{user_id}",
        "/{section}/latest",
        "/users/{user_id}/orders",
        "/users/{user_id}",
        "/users/{name:path}",
    ]
    assert [r.path for r in buckets[None]] == ["/{section}/latest"]


def test_routes_added_later_are_found() -> None:
    app = _app()
    index_routes(app)
    with TestClient(app) as client:
        assert client.get("/late").status_code == 404

        @app.get("/late")
        async def late() -> dict[str, str]:
            return {"late": "yes"}

        assert client.get("/late").json() == {"late": "yes"}
        app.router.routes.insert(0, app.router.routes.pop())  # moved to the front: the index follows
        assert client.get("/late").json() == {"late": "yes"}


def test_nothing_after_a_mount_is_indexed() -> None:
    sub = APIRouter()
    routes = [Mount("/m", routes=sub.routes), *_app().router.routes]
    assert build_index(routes) == {}


def test_root_path_is_honoured() -> None:
    app = _app()
    index_routes(app)
    with TestClient(app, root_path="/api") as client:
        assert client.get("/api/hello").json() == {"hello": "world"}
