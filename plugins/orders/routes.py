"""``POST /orders``, ``GET /orders/{order_id}`` and ``GET /users/{user_id}/orders``.

Errors: ``404`` (order or user absent; for a new order, the user or products it names, listed
in FastAPI's validation-error shape, ``loc`` pointing at the field), ``409`` (insufficient stock,
or a total too large to store), ``422`` (a body the schema rejects: only those, so a body valid by
the schema is never a 422). Responses are serialized once (``fastplug.core.serializer``).
"""

# no ``from __future__ import annotations``: the body model is built per router, and FastAPI
# reads the endpoints' annotations as objects

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from fastplug.core import (
    CURSOR_PATTERN,
    TOO_LARGE,
    UNAVAILABLE,
    ErrorOut,
    JsonBytes,
    decode_cursor,
    encode_cursor,
    serializer,
)
from fastplug.plugins.cache.api import OptionalCache, invalidate_committed
from fastplug.plugins.db.api import DbReadSession, DbSession
from fastplug.plugins.orders import store
from fastplug.plugins.orders.schemas import MAX_ID, MissingReferences, OrderCreated, OrderOut, OrderPage, order_in
from fastplug.plugins.orders.settings import OrdersSettings
from fastplug.plugins.orders.tasks import SEND_CONFIRMATION
from fastplug.plugins.products.api import product_tag
from fastplug.plugins.tasks.api import Tasks

OrderId = Annotated[int, Path(ge=1, le=MAX_ID, description="the order's id")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="the user's id")]
LOCATION = {"description": "the new order's path", "schema": {"type": "string"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "not found"}}
# OpenAPI links: where an order leads (schemathesis' stateful tests follow them too)
CREATED_LINKS = {"GetOrder": {"operationId": "get_order", "parameters": {"order_id": "$response.body#/order_id"}}}
ORDER_LINKS = {
    "ListUserOrders": {"operationId": "list_user_orders", "parameters": {"user_id": "$response.body#/user_id"}}
}


def _unknown(rejected: store.UnknownReferences, lines: list[Any]) -> HTTPException:
    """The 404 listing what does not exist, each with the ``loc`` of the field naming it."""
    errors = []
    for missing in rejected.missing:
        loc: list[str | int] = list(missing.loc)
        if missing.kind == "product":  # point at the first line naming it
            index = next(i for i, line in enumerate(lines) if line.product_id == missing.value)
            loc = ["body", "items", index, "product_id"]
        message = f"{missing.kind} {missing.value} does not exist"
        errors.append({"type": "not_found", "loc": loc, "msg": message, "input": missing.value})
    return HTTPException(404, errors)


def build_router(conf: OrdersSettings) -> APIRouter:
    """The orders routes, ``[orders]`` applied (line cap, page sizes, email sender)."""
    router = APIRouter(responses=UNAVAILABLE)
    body_model = order_in(conf.max_items)
    max_page = conf.max_page_size
    default_page = min(conf.page_size, max_page)
    created = serializer(OrderCreated)
    one = serializer(OrderOut)
    page = serializer(OrderPage)

    @router.post(
        "/orders",
        name="create_order",
        tags=["orders"],
        status_code=201,
        response_model=OrderCreated,
        operation_id="create_order",
        responses={
            201: {"headers": {"Location": LOCATION}, "links": CREATED_LINKS},
            400: {"model": ErrorOut, "description": "the body is not JSON"},  # FastAPI's answer
            404: {"model": MissingReferences, "description": "the user or a product does not exist"},
            409: {"model": ErrorOut, "description": "insufficient stock, or a total too large to store"},
            **TOO_LARGE,
        },
    )
    async def create_order(
        body: body_model,  # type: ignore[valid-type]
        session: DbSession,
        tasks: Tasks,
        cache: OptionalCache,
    ) -> JsonBytes:
        """Place an order: stock is taken, the order and its items written and the
        confirmation email enqueued, all in one transaction. Lines of the same product are
        merged; prices are the current ones. ``404`` when the user or a product does not
        exist, ``409`` when a product has too few units in stock or the total would exceed
        9999999999.99."""
        lines = store.merge_lines((line.product_id, line.quantity) for line in body.items)
        try:
            order = await store.place_order(session, body.user_id, lines)
        except store.UnknownReferences as exc:
            raise _unknown(exc, body.items) from None
        except (store.OutOfStock, store.TotalTooLarge) as exc:
            raise HTTPException(409, str(exc)) from None
        await tasks.enqueue(session, SEND_CONFIRMATION, order.id)
        await session.commit()  # before the cache forgets the old stock figures
        # the stock of these products changed: only the answers showing them go
        await invalidate_committed(cache, tags=[product_tag(product_id) for product_id in lines])
        out = OrderCreated(order_id=order.id, status=order.status, total=order.total)
        return created.response(out, status_code=201, headers={"Location": f"/orders/{order.id}"})

    @router.get(
        "/orders/{order_id}",
        name="get_order",
        operation_id="get_order",
        tags=["orders"],
        response_model=OrderOut,
        responses={200: {"links": ORDER_LINKS}, **NOT_FOUND},
    )
    async def get_order(order_id: OrderId, session: DbReadSession) -> JsonBytes:
        """An order with its items and their products."""
        order = await store.get_order(session, order_id)
        if order is None:
            raise HTTPException(404, f"order {order_id} not found")
        return one.response(order, from_attributes=True)

    @router.get(
        "/users/{user_id}/orders",
        name="list_user_orders",
        operation_id="list_user_orders",
        tags=["users", "orders"],
        response_model=OrderPage,
        responses=NOT_FOUND,
    )
    async def user_orders(
        user_id: UserId,
        session: DbReadSession,
        limit: Annotated[int, Query(ge=1, le=max_page, description="orders per page")] = default_page,
        cursor: Annotated[
            str | None, Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page")
        ] = None,
    ) -> JsonBytes:
        """A user's orders, newest first, with their items and products: the same few
        queries whatever the number of orders (keyset pages)."""
        before: int | None = None if cursor is None else decode_cursor(cursor)
        if before is not None and before > MAX_ID:  # every id is below it: the first page
            before = None
        found = await store.user_orders(session, user_id, limit, before)
        if found is None:
            raise HTTPException(404, f"user {user_id} not found")
        rows, last = found
        next_cursor = None if last is None else encode_cursor(last)
        return page.response({"items": rows, "next_cursor": next_cursor}, from_attributes=True)

    return router
