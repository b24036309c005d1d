"""The orders plugin's database work: placing an order race-free, reading orders eagerly.

The ``users`` and ``products`` tables are reached through core's shared metadata
(``Base.metadata.tables``), never by importing those plugins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, Numeric, String, Table, bindparam, exists, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import Select

from fastplug.plugins.db.api import Base
from fastplug.plugins.orders.models import Order, OrderItem

PLACED = "placed"
CENT = Decimal("0.01")
MAX_TOTAL = Decimal("9999999999.99")  # orders.total is NUMERIC(12, 2)


def table(name: str) -> Table:
    """A table another plugin registered (``users``, ``products``)."""
    return Base.metadata.tables[name]


class OrderRejected(Exception):  # noqa: N818 - reads as the condition it is
    """The order cannot be placed; nothing was written (the transaction must roll back)."""


@dataclass(frozen=True, slots=True)
class UnknownReference:
    """A body field naming a row that does not exist."""

    loc: tuple[str | int, ...]
    kind: str
    value: int


class UnknownReferences(OrderRejected):
    """The user or some products do not exist."""

    def __init__(self, missing: Sequence[UnknownReference]) -> None:
        super().__init__(", ".join(f"{m.kind} {m.value} does not exist" for m in missing))
        self.missing = list(missing)


class OutOfStock(OrderRejected):
    """Some products have fewer units in stock than ordered: ``{product_id: (wanted, available)}``."""

    def __init__(self, short: Mapping[int, tuple[int, int]]) -> None:
        lines = "; ".join(f"product {pid}: {want} ordered, {have} in stock" for pid, (want, have) in short.items())
        super().__init__(
            f"insufficient stock: {lines}" if lines else "insufficient stock: the stock changed, try again"
        )
        self.short = dict(short)


class TotalTooLarge(OrderRejected):
    """The order's total does not fit ``orders.total``."""

    def __init__(self, total: Decimal) -> None:
        super().__init__(f"the order's total {total} exceeds {MAX_TOTAL}")
        self.total = total


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """The new order's id and what it costs."""

    id: int
    status: str
    total: Decimal
    created_at: datetime | None


def merge_lines(lines: Iterable[tuple[int, int]]) -> dict[int, int]:
    """``{product_id: quantity}`` with lines of the same product summed, by product id."""
    merged: dict[int, int] = {}
    for product_id, quantity in lines:
        merged[product_id] = merged.get(product_id, 0) + quantity
    return dict(sorted(merged.items()))


def _take_stock() -> Any:
    products = table("products")
    qty = bindparam("qty", type_=Integer)
    return (
        update(products)
        .where(products.c.id == bindparam("pid", type_=Integer), products.c.stock >= qty)
        .values(stock=products.c.stock - qty)
        .returning(products.c.price)
    )


async def _diagnose(
    session: AsyncSession, user_id: int, lines: Mapping[int, int], taken: Mapping[int, int]
) -> OrderRejected:
    """Why the order cannot be placed (only on the failure path: two small reads)."""
    users, products = table("users"), table("products")
    missing: list[UnknownReference] = []
    if await session.scalar(select(users.c.id).where(users.c.id == user_id)) is None:
        missing.append(UnknownReference(("body", "user_id"), "user", user_id))
    rows = await session.execute(select(products.c.id, products.c.stock).where(products.c.id.in_(list(lines))))
    stock = {pid: have + taken.get(pid, 0) for pid, have in rows}  # as before this transaction
    missing += [UnknownReference(("body", "items"), "product", pid) for pid in lines if pid not in stock]
    if missing:
        return UnknownReferences(missing)
    # nothing short: the stock was raised since the UPDATE failed; the client may retry
    return OutOfStock({pid: (want, stock[pid]) for pid, want in lines.items() if stock[pid] < want})


async def place_order(session: AsyncSession, user_id: int, lines: Mapping[int, int]) -> PlacedOrder:
    """Take the stock and write the order and its items in ``session``'s transaction.

    ``lines`` is ``{product_id: quantity}`` (see :func:`merge_lines`). Each product's stock
    goes down by a conditional ``UPDATE ... WHERE stock >= :qty RETURNING price``, in
    product id order (rows are locked in one order: concurrent orders cannot deadlock), and
    the first statement is a write (SQLite takes its write lock at once). Raises
    :class:`UnknownReferences`, :class:`OutOfStock` or :class:`TotalTooLarge` (roll back:
    stock was taken).
    Statements on success: one per product, then the order, then its items.
    """
    take = _take_stock()
    prices: dict[int, Decimal] = {}
    for product_id, quantity in lines.items():
        price = (await session.execute(take, {"pid": product_id, "qty": quantity})).scalar()
        if price is None:
            taken = {pid: lines[pid] for pid in prices}
            raise await _diagnose(session, user_id, lines, taken)
        prices[product_id] = Decimal(price)
    total = sum((prices[pid] * qty for pid, qty in lines.items()), Decimal(0)).quantize(CENT)
    if total > MAX_TOTAL:
        raise TotalTooLarge(total)
    orders, users = Order.__table__, table("users")
    values = select(literal(user_id, Integer), literal(PLACED, String), literal(total, Numeric(12, 2))).where(
        exists().where(users.c.id == user_id)
    )  # the user check rides on the insert
    new = insert(orders).from_select(["user_id", "status", "total"], values)
    row = (await session.execute(new.returning(orders.c.id, orders.c.created_at))).first()
    if row is None:
        raise UnknownReferences([UnknownReference(("body", "user_id"), "user", user_id)])
    order_id, created_at = row
    items = [
        {"order_id": order_id, "product_id": pid, "quantity": qty, "unit_price": prices[pid]}
        for pid, qty in lines.items()
    ]
    await session.execute(insert(OrderItem.__table__), items)
    return PlacedOrder(order_id, PLACED, total, created_at)


PRODUCT_FIELDS = ("id", "sku", "name", "price")  # what order responses and emails show


@lru_cache(maxsize=1)
def _lines_option() -> Any:
    product = OrderItem.product.property.mapper.class_  # the products plugin's class, by the registry
    fields = [getattr(product, name) for name in PRODUCT_FIELDS]
    return selectinload(Order.items).selectinload(OrderItem.product).load_only(*fields)


def with_lines() -> Select[tuple[Order]]:
    """Orders with their items and the items' products (``selectinload``: one query for
    the orders, one for all their items, one for all those products' shown columns)."""
    return select(Order).options(_lines_option())


@lru_cache(maxsize=1)
def _statements() -> dict[str, Any]:
    """The read statements, built once (on first use: the other plugins' tables and classes
    are registered by then) with bind parameters, so every request reuses one statement
    object: its cache key is computed once and the compiled SQL is reused."""
    users = table("users")
    newest = with_lines().where(Order.user_id == bindparam("user_id", type_=Integer))
    before = newest.where(Order.id < bindparam("cursor", type_=Integer))
    limit = bindparam("limit", type_=Integer)
    return {
        "order": with_lines().where(Order.id == bindparam("order_id", type_=Integer)),
        "user_exists": select(users.c.id).where(users.c.id == bindparam("user_id", type_=Integer)),
        "first_page": newest.order_by(Order.id.desc()).limit(limit),
        "next_page": before.order_by(Order.id.desc()).limit(limit),
    }


async def get_order(session: AsyncSession, order_id: int) -> Order | None:
    """One order with its items and products, or ``None`` (three queries)."""
    return await session.scalar(_statements()["order"], {"order_id": order_id})


async def user_exists(session: AsyncSession, user_id: int) -> bool:
    """True when the user exists."""
    return await session.scalar(_statements()["user_exists"], {"user_id": user_id}) is not None


async def user_orders(
    session: AsyncSession, user_id: int, limit: int, cursor: int | None = None
) -> tuple[Sequence[Order], int | None] | None:
    """A page of the user's orders (newest first, ids below ``cursor``) and the next cursor,
    or ``None`` when the user does not exist. Three queries whatever the page size (an empty
    page: the orders query and the user check)."""
    statements = _statements()
    params = {"user_id": user_id, "limit": limit + 1}
    if cursor is None:
        query = statements["first_page"]
    else:
        query, params["cursor"] = statements["next_page"], cursor
    rows = (await session.scalars(query, params)).all()
    if not rows and not await user_exists(session, user_id):
        return None
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None
