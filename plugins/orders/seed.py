"""Seed orders: ``--orders-per-user`` orders for each user seeded in this run, each with
1..``--items-per-order`` lines of distinct products (popular ones more often) at the
product's price; totals are the sum of the lines; dates between sign-up and now.

The users and products come from the seeders before this one (``ctx.results``) and the
``users``/``products`` tables: this plugin never imports theirs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click

from fastplug.config import Settings
from fastplug.plugins.db.api import SeedContext, Seeder, SeedResult
from fastplug.plugins.orders.settings import OrdersSettings

ORDER_COLUMNS = ("id", "user_id", "status", "total", "created_at")
ITEM_COLUMNS = ("order_id", "product_id", "quantity", "unit_price")
EXISTING_PRODUCTS = 100_000  # with --products 0: order from (at most) this many existing products
QUANTITIES, QUANTITY_WEIGHTS = (1, 2, 3, 4, 5), tuple(itertools.accumulate((60, 20, 10, 6, 4)))


def seeders(settings: Settings) -> Sequence[Seeder]:
    """The ``orders`` seeder, after ``users`` and ``products``, and its options."""
    max_items = settings.section("orders", OrdersSettings).max_items
    options = (
        click.Option(
            ["--orders-per-user"],
            type=click.IntRange(0),
            default=3,
            show_default=True,
            help="orders for each user seeded in this run",
        ),
        click.Option(
            ["--items-per-order"],
            type=click.IntRange(1, max_items),
            default=min(5, max_items),
            show_default=True,
            help="most lines per order (each order has 1..N)",
        ),
    )
    return [
        Seeder("orders", seed_orders, options=options, after=("users", "products"), tables=("orders", "order_items"))
    ]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _status(rng: Any, age_days: float) -> str:
    if rng.random() < 0.03:
        return "cancelled"
    if age_days > 10:
        return "delivered"
    return ("placed", "paid", "shipped", "delivered")[min(int(age_days / 2.5), 3)]


async def _products(ctx: SeedContext) -> list[tuple[int, Decimal]]:
    seeded = ctx.results["products"].ids
    if seeded:
        found = await ctx.rows("products", ("id", "price"), seeded)
    else:
        from sqlalchemy import select

        table = ctx.table("products")
        query = select(table.c.id, table.c.price).order_by(table.c.id.desc()).limit(EXISTING_PRODUCTS)
        found = [tuple(row) for row in await ctx.connection.execute(query)]
    if not found:
        raise LookupError("no products to order: seed some with --products N")
    return [(int(product_id), Decimal(price)) for product_id, price in found]


async def seed_orders(ctx: SeedContext) -> SeedResult:
    """Insert the orders and their items in batches of about ``batch_size`` orders."""
    rng = ctx.random
    per_user: int = ctx.options["orders_per_user"]
    max_items: int = ctx.options["items_per_order"]
    user_ids = ctx.results["users"].ids
    total = len(user_ids) * per_user
    if total == 0:
        return SeedResult(counts={"orders": 0, "order_items": 0})
    products = await _products(ctx)
    rng.shuffle(products)  # popularity must not follow the ids
    popularity = list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(len(products))))
    sizes = range(1, max_items + 1)
    size_weights = list(itertools.accumulate(1 / size for size in sizes))
    signed_up = await ctx.rows("users", ("id", "created_at"), user_ids)
    reserved = await ctx.reserve_ids("orders", total)
    order_ids = iter(reserved)
    ctx.progress.start(total)
    items_count = 0
    step = max(1, ctx.batch_size // per_user)  # users per batch: about batch_size orders
    for start in range(0, len(signed_up), step):
        users = signed_up[start : start + step]
        orders: list[tuple[Any, ...]] = []
        items: list[tuple[Any, ...]] = []
        for user_id, created in users:
            since = _aware(created)
            for _ in range(per_user):
                order_id = next(order_ids)
                placed = since + (ctx.now - since) * rng.random()
                size = rng.choices(sizes, cum_weights=size_weights)[0]
                picked = dict.fromkeys(rng.choices(range(len(products)), cum_weights=popularity, k=size))
                cents = 0
                for index in picked:
                    product_id, price = products[index]
                    quantity = rng.choices(QUANTITIES, cum_weights=QUANTITY_WEIGHTS)[0]
                    cents += int(price * 100) * quantity
                    items.append((order_id, product_id, quantity, price))
                age_days = (ctx.now - placed).total_seconds() / 86400
                orders.append((order_id, user_id, _status(rng, age_days), Decimal(cents).scaleb(-2), placed))
        await ctx.insert("orders", ORDER_COLUMNS, orders)
        await ctx.insert("order_items", ITEM_COLUMNS, items)
        items_count += len(items)
        ctx.progress.advance(len(orders))
    return SeedResult(ids=reserved, counts={"orders": total, "order_items": items_count})
