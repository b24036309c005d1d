"""Issue 7: what the domain and serializer benchmark routes serve, shared by the baselines.

* ``GET /bench/list20k``: the 60 records of ``payload.py`` as ``Page`` (the same 20,283
  bytes as ``GET /bench/json20k``), serialized per request by the route under test.
* ``GET /products?limit=100``, ``GET /users/{id}``, ``GET /users/{id}/orders``: the domain
  plugins' routes, on the database ``benchmarks/run.py`` migrates and seeds (``$BENCH_DOMAIN_DSN``).

The response schemas are the plugins' own (``plugins/*/schemas.py``, re-exported here); the
harness checks that every target answers the same JSON before it measures anything.
"""

from __future__ import annotations

import os
from typing import Any

from payload import records
from pydantic import BaseModel
from typing_extensions import TypedDict

from fastplug.core.paging import encode_cursor, page_of
from fastplug.plugins.orders.schemas import OrderPage
from fastplug.plugins.products.schemas import ProductPage
from fastplug.plugins.users.schemas import UserOut

__all__ = ["OrderPage", "ProductPage", "UserOut", "encode_cursor", "page_of"]

LIST_PATH = "/bench/list20k"
PRODUCTS_LIMIT = 100


# --- the static 20 KB list -------------------------------------------------------------
class Record(BaseModel):
    """One product-like record of ``payload.py``."""

    id: int
    sku: str
    name: str
    price: float
    currency: str
    in_stock: bool
    stock: int
    category: str
    tags: list[str]
    rating: float
    description: str
    created_at: str


class Page(BaseModel):
    """The 20 KB page: ``{"items": [...60], "page": 1, "per_page": 60}``."""

    items: list[Record]
    page: int
    per_page: int


class RecordDict(TypedDict):
    """``Record`` as plain data: serialized without building models."""

    id: int
    sku: str
    name: str
    price: float
    currency: str
    in_stock: bool
    stock: int
    category: str
    tags: list[str]
    rating: float
    description: str
    created_at: str


class PageDict(TypedDict):
    """``Page`` as plain data."""

    items: list[RecordDict]
    page: int
    per_page: int


def page_dict() -> dict[str, Any]:
    """The page as dicts (what a handler that builds rows by hand returns)."""
    items = records()
    return {"items": items, "page": 1, "per_page": len(items)}


# --- the domain routes ----------------------------------------------------------------
# The response schemas are the plugins' own: every target does the same validation work and
# must answer the same bytes (the harness checks). Page sizes are the plugins' defaults.
ORDERS_PAGE = 50  # [orders] page_size


USER_SQL = "SELECT id, email, name, created_at FROM users WHERE id = $1"
PRODUCT_COLUMNS = "id, sku, name, description, category, price, stock, created_at, updated_at"
ORDERS_SQL = "SELECT id, user_id, status, total, created_at FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
ITEMS_SQL = (
    "SELECT i.order_id, i.product_id, i.quantity, i.unit_price, p.id AS p_id, p.sku, p.name, p.price"
    " FROM order_items i JOIN products p ON p.id = i.product_id WHERE i.order_id = ANY($1::int[]) ORDER BY i.id"
)


def domain_dsn() -> str | None:
    """The seeded domain database (``postgresql://...``), when the run made one."""
    return os.environ.get("BENCH_DOMAIN_DSN")


def async_url(dsn: str) -> str:
    """``postgresql://`` as SQLAlchemy's asyncpg URL."""
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
