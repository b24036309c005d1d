"""Plugins defining their own hooks for other plugins (``add_hookspecs``)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pluggy
import pytest
from fastapi import FastAPI

from fastplug.config.errors import FastplugError
from fastplug.core import PluginInfo, hookimpl, hookspec
from fastplug.core.runtime import Runtime

Make = Callable[..., FastAPI]


class WidgetSpecs:
    """The hook the ``widgets`` plugin defines."""

    @hookspec
    def register_widgets(self, prefix: str) -> list[str]:  # type: ignore[empty-body]
        """Return widget names."""


class Widgets:
    """Defines ``register_widgets`` and collects every plugin's widgets when the app is built."""

    def __init__(self) -> None:
        self.collected: list[tuple[str, list[str]]] = []

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(name="widgets")

    @hookimpl
    def add_hookspecs(self, pm: pluggy.PluginManager) -> None:
        pm.add_hookspecs(WidgetSpecs)

    @hookimpl
    def app_created(self, app: FastAPI) -> None:
        self.collected = Runtime.of(app).plugins.call_each("register_widgets", prefix="w-")


def gadget(optional: bool) -> SimpleNamespace:
    @hookimpl(optionalhook=optional)
    def register_widgets(prefix: str) -> list[str]:
        return [f"{prefix}gear"]

    return SimpleNamespace(
        plugin_info=hookimpl(lambda: PluginInfo(name="gadget", after=("widgets",))),
        register_widgets=register_widgets,
    )


def test_plugin_defined_hook_is_called_on_other_plugins(fastplug_app_factory: Make) -> None:
    widgets = Widgets()
    fastplug_app_factory(plugins=["gadget", "widgets"], extra_plugins={"widgets": widgets, "gadget": gadget(False)})
    assert widgets.collected == [("gadget", ["w-gear"])]


def test_hook_of_a_disabled_plugin_is_an_error_unless_optional(fastplug_app_factory: Make) -> None:
    with pytest.raises(FastplugError) as caught:
        fastplug_app_factory(plugins=["gadget"], extra_plugins={"widgets": Widgets(), "gadget": gadget(False)})
    assert str(caught.value).startswith("plugin 'gadget' implements unknown hook 'register_widgets'")
    app = fastplug_app_factory(plugins=["gadget"], extra_plugins={"widgets": Widgets(), "gadget": gadget(True)})
    assert Runtime.of(app).plugins.names == ["gadget"]


def test_runtime_of_rejects_other_apps() -> None:
    with pytest.raises(LookupError, match="not a fastplug app"):
        Runtime.of(FastAPI())
