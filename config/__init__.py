"""Settings loading and validation: dynaconf layers, pydantic-settings models."""

if __name__ != "fastplug.config":  # imported by its folder name from a checkout: a second copy
    raise ImportError(
        "fastplug's 'config' folder is the package 'fastplug.config': import fastplug.config (and its modules as "
        "fastplug.config.<module>), not 'config'; a project may have a 'config' package of its own"
    )


from fastplug.config.errors import FastplugError, Problem
from fastplug.config.masking import mask_secrets, mask_url
from fastplug.config.models import CoreSettings, EmptySettings, PluginSettings, ServerSettings
from fastplug.config.settings import Settings
from fastplug.config.sources import RawSettings, Source, load_raw, settings_path
from fastplug.config.validation import mask_url_password

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
    "mask_secrets",
    "mask_url",
    "mask_url_password",
    "settings_path",
]
