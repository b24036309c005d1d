"""products plugin: cached ``GET /products`` (keyset pages by category) and
``GET /products/{product_id}``; ``POST``/``PATCH`` invalidate the ``products`` cache tag."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from config.settings import Settings
from core.markers import hookimpl
from core.specs import PluginInfo
from plugins.products.settings import ProductsSettings

MIGRATIONS = Path(__file__).with_name("migrations")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="products",
        settings=ProductsSettings,
        requires=("db",),
        after=("cache",),
        description="product catalogue: cached reads, tag invalidation on writes",
    )


@hookimpl
def register_routers(settings: Settings) -> Sequence[APIRouter]:
    from plugins.products.routes import build_router

    return [build_router(settings.section("products", ProductsSettings))]


@hookimpl(optionalhook=True)
def register_models() -> Sequence[type]:
    from plugins.products.models import Product

    return [Product]


@hookimpl(optionalhook=True)
def register_migrations() -> Path:
    return MIGRATIONS


@hookimpl(optionalhook=True)
def register_seeders(settings: Settings) -> Sequence[Any]:
    from plugins.products.seed import seeders

    return seeders(settings)
