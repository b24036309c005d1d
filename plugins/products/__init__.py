"""products plugin: cached ``GET /products`` (keyset pages by category) and
``GET /products/{product_id}``; ``POST``/``PATCH`` invalidate only the cached answers they
change (per-product tags, see ``fastplug.plugins.products.api``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from fastplug.config import Settings
from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.products.settings import ProductsSettings

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
    from fastplug.plugins.products.routes import build_router

    return [build_router(settings.section("products", ProductsSettings))]


@hookimpl(optionalhook=True)
def register_models() -> Sequence[type]:
    from fastplug.plugins.products.models import Product

    return [Product]


@hookimpl(optionalhook=True)
def register_migrations() -> Path:
    return MIGRATIONS


@hookimpl(optionalhook=True)
def register_seeders(settings: Settings) -> Sequence[Any]:
    from fastplug.plugins.products.seed import seeders

    return seeders(settings)
