"""Request and response bodies of the products routes."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from fastplug.core import INT32_MAX, JsonInteger, UtcDatetime
from fastplug.plugins.products.api import Cents

PRICE_PATTERN = r"^(0|[1-9][0-9]{0,7})(\.[0-9]{1,2})?$"
PRICE_LIMIT = 10**8  # Numeric(10, 2): 8 digits before the point, 2 after
_PRICE = re.compile(r"(0|[1-9][0-9]{0,7})(\.[0-9]{1,2})?")  # PRICE_PATTERN, for fullmatch
LINE_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # one line of printable text
TEXT_PATTERN = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def _price_text(value: Any) -> Any:
    if isinstance(value, str) and not _PRICE.fullmatch(value):  # not "12.50\n": "$" ends the text in the schema
        raise ValueError("a price is a decimal number like 12.50 (at most 8 digits, 2 decimals)")
    if isinstance(value, bool):
        raise ValueError("a price is a number")
    return value


def _no_negative_zero(value: Decimal) -> Decimal:
    return value + 0  # -0.0 is stored and shown as 0.00, not -0.00


Sku = Annotated[str, Field(min_length=1, max_length=32, pattern=LINE_PATTERN, examples=["SKU-000042"])]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=LINE_PATTERN, examples=["Blue mug"])]
Category = Annotated[str, Field(min_length=1, max_length=50, pattern=LINE_PATTERN, examples=["kitchen"])]
Description = Annotated[str, Field(max_length=10_000, pattern=TEXT_PATTERN)]
Price = Annotated[
    Decimal,
    BeforeValidator(_price_text),
    Field(ge=0, lt=Decimal(PRICE_LIMIT), max_digits=10, decimal_places=2, strict=False),  # numbers and strings
    AfterValidator(_no_negative_zero),
    WithJsonSchema(
        {  # exactly what is accepted: a number with at most 2 decimals (12, 12.5, 12.25), or such a string
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": PRICE_LIMIT, "multipleOf": 0.01},
                {"type": "string", "pattern": PRICE_PATTERN},
            ],
            "description": "at most 2 decimals, under 10^8",
            "examples": ["12.50"],
        },
        mode="validation",
    ),
]
Stock = Annotated[int, Field(ge=0, le=INT32_MAX), JsonInteger]
ProductId = Annotated[int, Field(ge=1, le=INT32_MAX)]


class ProductIn(BaseModel):
    """A new product; ``sku`` is unique."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sku: Sku
    name: Name
    description: Description = ""
    category: Category
    price: Price
    stock: Stock = 0


def _not_nullable(schema: dict[str, Any]) -> None:
    # Optional in Python, but a field given as null is rejected: document it as not nullable
    for prop in schema.get("properties", {}).values():
        choices = [c for c in prop.pop("anyOf", []) if c != {"type": "null"}]
        if len(choices) == 1:
            prop.update(choices[0])
        elif choices:
            prop["anyOf"] = choices
        if prop.get("default", ...) is None:
            del prop["default"]


class ProductPatch(BaseModel):
    """Fields to change; omitted fields stay as they are (an empty body changes nothing)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_not_nullable)

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    price: Price | None = None
    stock: Stock | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be omitted, not null")
        return value


class ProductOut(BaseModel):
    """A product as the API shows it (``price`` as a decimal string, e.g. ``"12.50"``)."""

    model_config = ConfigDict(from_attributes=True)

    id: ProductId
    sku: str
    name: str
    description: str
    category: str
    price: Cents
    stock: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ProductPage(BaseModel):
    """One page of products, by id; pass ``next_cursor`` as ``cursor`` for the next (null: last page)."""

    model_config = ConfigDict(from_attributes=True)

    items: list[ProductOut]
    next_cursor: str | None
