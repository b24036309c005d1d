"""The products plugin's public API: the shop's money type, shared with the orders plugin."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator

CENT = Decimal("0.01")

Cents = Annotated[Decimal, AfterValidator(lambda value: value.quantize(CENT))]
"""An amount answered with two decimals (``"12.50"``, not ``"12.5"``)."""

__all__ = ["CENT", "Cents"]
