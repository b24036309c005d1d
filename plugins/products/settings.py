"""``[products]`` settings."""

from pydantic import Field

from fastplug.config import PluginSettings


class ProductsSettings(PluginSettings):
    """Page sizes and response-cache lifetimes of the product routes."""

    page_size: int = Field(50, ge=1, le=1000, description="default limit")
    max_page_size: int = Field(200, ge=1, le=10_000, description="largest limit a client may ask")
    cache_ttl: float = Field(60.0, ge=0, description="seconds a product page or product stays cached")
