"""users plugin: ``POST /users``, ``GET /users/{user_id}``, ``GET /users`` (keyset pages).

``GET /users/{user_id}/orders`` is served by the orders plugin, which owns the order tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from fastplug.config import Settings
from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.users.settings import UsersSettings

MIGRATIONS = Path(__file__).with_name("migrations")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name="users",
        settings=UsersSettings,
        requires=("db",),
        description="users: create, read, keyset-paginated list",
    )


@hookimpl
def register_routers(settings: Settings) -> Sequence[APIRouter]:
    from fastplug.plugins.users.routes import build_router

    return [build_router(settings.section("users", UsersSettings))]


@hookimpl(optionalhook=True)
def register_models() -> Sequence[type]:
    from fastplug.plugins.users.models import User

    return [User]


@hookimpl(optionalhook=True)
def register_migrations() -> Path:
    return MIGRATIONS


@hookimpl(optionalhook=True)
def register_seeders(settings: Settings) -> Sequence[Any]:
    from fastplug.plugins.users.seed import seeders

    return seeders(settings)
