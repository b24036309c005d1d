"""orders plugin: ``POST /orders`` (order, items and confirmation email in one transaction
through the tasks outbox), ``GET /orders/{order_id}`` and ``GET /users/{user_id}/orders``
(orders, items and products in a fixed number of queries)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from fastplug.config import Settings
from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.orders.settings import OrdersSettings

MIGRATIONS = Path(__file__).with_name("migrations")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="orders",
        settings=OrdersSettings,
        requires=("db", "users", "products", "tasks"),
        description="orders: transactional create with a confirmation email task, eager-loaded reads",
    )


@hookimpl
def register_routers(settings: Settings) -> Sequence[APIRouter]:
    from fastplug.plugins.orders.routes import build_router

    return [build_router(settings.section("orders", OrdersSettings))]


@hookimpl(optionalhook=True)
def register_models() -> Sequence[type]:
    from fastplug.plugins.orders.models import Order, OrderEmail, OrderItem

    return [Order, OrderItem, OrderEmail]


@hookimpl(optionalhook=True)
def register_migrations() -> Path:
    return MIGRATIONS


@hookimpl(optionalhook=True)
def register_tasks(celery_app: Any, settings: Settings) -> None:
    from fastplug.plugins.orders.tasks import register

    register(celery_app, settings)


@hookimpl(optionalhook=True)
def register_seeders(settings: Settings) -> Sequence[Any]:
    from fastplug.plugins.orders.seed import seeders

    return seeders(settings)
