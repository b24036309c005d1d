"""Settings loading and validation: dynaconf layers, pydantic-settings models."""

from config.errors import FastplugError, Problem
from config.models import CoreSettings, EmptySettings, PluginSettings, ServerSettings
from config.settings import Settings
from config.sources import RawSettings, Source, load_raw, settings_path

__all__ = [
    "CoreSettings",
    "EmptySettings",
    "FastplugError",
    "PluginSettings",
    "Problem",
    "RawSettings",
    "ServerSettings",
    "Settings",
    "Source",
    "load_raw",
    "settings_path",
]
