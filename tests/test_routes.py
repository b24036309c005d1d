"""Plugin routers become the app's own routes: same OpenAPI, same behaviour, no wrapper."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastplug.core.response_model import FastplugRoute
from fastplug.core.routes import add_router, iter_routes


class Item(BaseModel):
    id: int
    name: str


def current_user() -> str:
    return "real"


def build_router() -> APIRouter:
    router = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(current_user)])

    @router.get("/{item_id}", response_model=Item, summary="one item", responses={404: {"description": "absent"}})
    async def get_item(item_id: int, user: str = Depends(current_user)) -> dict[str, object]:
        return {"id": item_id, "name": user, "extra": "dropped by the response model"}

    @router.post("", status_code=201, deprecated=True)
    async def create_item(item: Item) -> Item:
        return item

    @router.get("/hidden/x", include_in_schema=False, response_class=PlainTextResponse)
    async def hidden() -> str:
        return "psst"

    return router


def test_same_openapi_as_include_router() -> None:
    flat, included = FastAPI(), FastAPI()
    add_router(flat, build_router())
    included.include_router(build_router())
    assert flat.openapi() == included.openapi()


def test_routes_are_the_apps_own_and_behave_the_same() -> None:
    app = FastAPI()
    added = add_router(app, build_router())
    assert all(type(route) is FastplugRoute for route in added)  # an APIRoute, with dict-mirrored responses
    assert added == app.router.routes[-3:]
    with TestClient(app) as client:
        assert client.get("/items/3").json() == {"id": 3, "name": "real"}
        assert client.post("/items", json={"id": 1, "name": "a"}).status_code == 201
        assert client.get("/items/hidden/x").text == "psst"
        assert client.get("/items/x").status_code == 422


def test_dependency_overrides_reach_plugin_routes() -> None:
    app = FastAPI()
    add_router(app, build_router())
    app.dependency_overrides[current_user] = lambda: "override"
    with TestClient(app) as client:
        assert client.get("/items/3").json() == {"id": 3, "name": "override"}


def test_routers_with_other_routes_are_included() -> None:
    router = APIRouter()

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = FastAPI()
    added = add_router(app, router)
    assert [row.path for row in iter_routes(app.routes) if row.original in added] == ["/ws"]
    with TestClient(app) as client, client.websocket_connect("/ws") as socket:
        assert socket.receive_text() == "hi"
