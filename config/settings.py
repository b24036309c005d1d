"""The validated settings an app is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from fastplug.config.models import CoreSettings, PluginSettings
from fastplug.config.sources import RawSettings

S = TypeVar("S", bound=PluginSettings)


def plugin_name(entry: str) -> str:
    """The plugin an entry of ``plugins`` names: ``"blog"`` for ``"app.plugins.blog"``."""
    return entry.rsplit(".", 1)[-1]


@dataclass(slots=True)
class Settings:
    """Core's settings plus one validated model per enabled plugin section."""

    raw: RawSettings
    core: CoreSettings
    sections: dict[str, PluginSettings] = field(default_factory=dict)

    @property
    def env(self) -> str:
        """The environment these settings are for (``FASTPLUG_ENV``)."""
        return self.raw.env

    @property
    def path(self) -> Path:
        """The settings file."""
        return self.raw.path

    @property
    def plugins(self) -> list[str]:
        """Enabled plugin names, in the user's order (a local plugin listed by dotted path,
        ``"app.plugins.blog"``, is named by its last part, ``blog``)."""
        return list(dict.fromkeys(plugin_name(entry) for entry in self.core.plugins))

    @overload
    def section(self, name: str) -> PluginSettings: ...
    @overload
    def section(self, name: str, model: type[S]) -> S: ...
    def section(self, name: str, model: type[Any] | None = None) -> Any:
        """The validated section of plugin ``name``; with ``model``, checked to be that type."""
        try:
            value = self.sections[name]
        except KeyError:
            raise KeyError(f"no settings section for plugin '{name}' (is it enabled?)") from None
        if model is not None and not isinstance(value, model):
            raise TypeError(f"settings section '{name}' is {type(value).__name__}, not {model.__name__}")
        return value
