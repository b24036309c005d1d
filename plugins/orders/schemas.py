"""Request and response bodies of the orders routes.

Every input is bounded (ids fit a 32-bit ``INTEGER``, quantities and lines are capped) so
no request can reach the database with a value it would reject, and the schema says exactly what
is accepted (``3.0`` is the integer 3, as JSON Schema has it; ``"3"``, ``true`` and ``3.5`` are
not). Response models read ORM rows directly (``from_attributes``); money is a ``Decimal`` (a
JSON string, exact).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from fastplug.core import INT32_MAX, JsonInteger, UtcDatetime
from fastplug.plugins.products.api import Cents

MAX_ID = INT32_MAX
MAX_QUANTITY = 10_000

Id = Annotated[int, Field(ge=1, le=MAX_ID), JsonInteger]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), JsonInteger]


class OrderLineIn(BaseModel):
    """One line of a new order; lines naming the same product are merged."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "1" or true is not an id or a quantity

    product_id: Id
    quantity: Quantity


class OrderIn(BaseModel):
    """A new order: who orders and what (at most ``[orders] max_items`` lines)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "1" or true is not an id or a quantity

    user_id: Id
    items: list[OrderLineIn] = Field(min_length=1, max_length=1000)


@lru_cache(maxsize=8)
def order_in(max_items: int) -> type[OrderIn]:
    """:class:`OrderIn` with ``items`` capped at ``max_items`` (shown as such in OpenAPI)."""
    items = (list[OrderLineIn], Field(min_length=1, max_length=max_items))
    return create_model("OrderIn", __base__=OrderIn, __doc__=OrderIn.__doc__, items=items)


class MissingReference(BaseModel):
    """A user or product a new order names that does not exist (``loc``: the field naming it)."""

    type: Literal["not_found"]
    loc: list[str | int]
    msg: str
    input: int


class MissingReferences(BaseModel):
    """The ``404`` of ``POST /orders``: every reference that does not exist."""

    detail: list[MissingReference]


class OrderCreated(BaseModel):
    """What ``POST /orders`` answers (the full order is at ``Location``)."""

    order_id: int
    status: str
    total: Cents


class ProductBrief(BaseModel):
    """The product of an order line, as it is now."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name: str
    price: Cents


class OrderItemOut(BaseModel):
    """An order line: the quantity, the price paid per unit and the product."""

    model_config = ConfigDict(from_attributes=True)

    product_id: int
    quantity: int
    unit_price: Cents
    product: ProductBrief


class OrderOut(BaseModel):
    """An order with its lines."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    status: str
    total: Cents
    created_at: UtcDatetime
    items: list[OrderItemOut]


class OrderPage(BaseModel):
    """A page of a user's orders, newest first; pass ``next_cursor`` as ``cursor`` for the
    next one (``null``: this is the last page)."""

    model_config = ConfigDict(from_attributes=True)

    items: list[OrderOut]
    next_cursor: str | None
