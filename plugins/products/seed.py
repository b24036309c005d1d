"""Seed products: names and descriptions per category, unique SKUs, prices with two
decimals (mostly ending in .99/.49), stock levels, dates over the last year."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import click

from fastplug.config import Settings
from fastplug.plugins.db.api import SeedContext, Seeder, SeedResult

# category: (nouns, lowest price, highest price)
CATEGORIES: dict[str, tuple[tuple[str, ...], float, float]] = {
    "books": (("Novel", "Cookbook", "Field Guide", "Atlas", "Biography", "Poetry Collection"), 6, 60),
    "electronics": (("Headphones", "Speaker", "Charger", "Keyboard", "Monitor", "Webcam", "Router"), 15, 900),
    "home": (("Lamp", "Throw Blanket", "Vase", "Cushion", "Wall Clock", "Rug", "Candle"), 8, 400),
    "kitchen": (("Chef Knife", "Frying Pan", "Kettle", "Cutting Board", "Blender", "Mug Set"), 7, 350),
    "garden": (("Watering Can", "Pruning Shears", "Planter", "Hose", "Bird Feeder", "Seed Kit"), 5, 250),
    "toys": (("Puzzle", "Building Set", "Plush Bear", "Board Game", "Kite", "Train Set"), 6, 150),
    "sports": (("Yoga Mat", "Water Bottle", "Running Shoes", "Dumbbell Set", "Tennis Racket"), 8, 300),
    "clothing": (("T-Shirt", "Hoodie", "Jeans", "Rain Jacket", "Scarf", "Sneakers", "Wool Socks"), 9, 250),
    "beauty": (("Face Cream", "Shampoo", "Lip Balm", "Perfume", "Hair Brush", "Sunscreen"), 4, 120),
    "office": (("Notebook", "Desk Organizer", "Fountain Pen", "Desk Chair", "Stapler", "Planner"), 3, 450),
}
ADJECTIVES = (
    "Classic", "Compact", "Deluxe", "Eco", "Ergonomic", "Essential", "Everyday", "Handcrafted", "Lightweight",
    "Modern", "Portable", "Premium", "Rustic", "Sleek", "Smart", "Sturdy", "Vintage", "Wireless",
)  # fmt: skip
MATERIALS = ("Bamboo", "Ceramic", "Cotton", "Glass", "Leather", "Linen", "Oak", "Recycled", "Steel", "Wool")
PITCHES = (
    "Built to last and easy to care for.",
    "A customer favourite, restocked every month.",
    "Designed with care in a small workshop.",
    "Thoughtful details you notice every day.",
    "Great as a gift; ships in recyclable packaging.",
    "Tested by our team for a full season.",
)
WARRANTIES = ("30-day returns.", "1-year warranty.", "2-year warranty.", "Free returns within 60 days.")
CENTS = (99, 99, 99, 49, 95, 0, 50)
COLUMNS = ("id", "sku", "name", "description", "category", "price", "stock", "created_at", "updated_at")
YEAR = timedelta(days=365).total_seconds()


def seeders(settings: Settings) -> Sequence[Seeder]:
    """The ``products`` seeder and its ``--products N`` option."""
    option = click.Option(
        ["--products"], type=click.IntRange(0), default=200, show_default=True, help="products to create"
    )
    return [Seeder("products", seed_products, options=(option,), tables=("products",))]


def _price(ctx: SeedContext, low: float, high: float) -> Decimal:
    """Log-uniform between ``low`` and ``high`` (cheap items are common), with shop-like cents."""
    euros = int(math.exp(ctx.random.uniform(math.log(low), math.log(high))))
    cents = max(euros * 100 + ctx.random.choice(CENTS), 99)
    return Decimal(cents).scaleb(-2)


def _row(ctx: SeedContext, product_id: int) -> tuple[Any, ...]:
    rng = ctx.random
    category = rng.choice(tuple(CATEGORIES))
    nouns, low, high = CATEGORIES[category]
    noun = rng.choice(nouns)
    name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {noun}" if rng.random() < 0.4 else ""
    name = name or f"{rng.choice(ADJECTIVES)} {noun}"
    description = f"{name}. {rng.choice(PITCHES)} {rng.choice(WARRANTIES)}"
    sku = f"{category[:3].upper()}-{product_id:07d}"
    stock = 0 if rng.random() < 0.08 else rng.randint(1, 500)
    created = ctx.now - timedelta(seconds=int(rng.uniform(0, YEAR)))
    updated = created + (ctx.now - created) * rng.random()
    return (product_id, sku, name, description, category, _price(ctx, low, high), stock, created, updated)


async def seed_products(ctx: SeedContext) -> SeedResult:
    """Insert ``--products`` products in batches."""
    count: int = ctx.options["products"]
    ids = await ctx.reserve_ids("products", count)
    ctx.progress.start(count)
    for chunk in ctx.batches(ids):
        await ctx.insert("products", COLUMNS, [_row(ctx, product_id) for product_id in chunk])
        ctx.progress.advance(len(chunk))
    return SeedResult(ids=ids, counts={"products": count})
