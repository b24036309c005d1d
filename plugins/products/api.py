"""The products plugin's public API: the shop's money type and the cache tags of its
answers, shared with the orders plugin.

Cache tags (see ``fastplug.plugins.cache.api.CacheTags``): ``GET /products/{id}`` is tagged
``product:<id>``; a ``GET /products`` page ``product:<id>`` for each product it was computed
from, and :data:`LIST_TAG` (what the pages hold changes: a product created, or moved to
another category); both :data:`TAG`. A write invalidates only what it changed:
``product_tag(id)`` for a product's fields (stock taken by an order included), plus
:data:`LIST_TAG` when products appear or change category.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator

CENT = Decimal("0.01")

Cents = Annotated[Decimal, AfterValidator(lambda value: value.quantize(CENT))]
"""An amount answered with two decimals (``"12.50"``, not ``"12.5"``)."""

TAG = "products"
"""Every cached products answer (invalidate it to drop them all)."""
LIST_TAG = "products:list"
"""Every cached ``GET /products`` page: invalidate when the set of products or their categories change."""


def product_tag(product_id: int) -> str:
    """The tag of every cached answer showing product ``product_id``."""
    return f"product:{product_id}"


__all__ = ["CENT", "LIST_TAG", "TAG", "Cents", "product_tag"]
