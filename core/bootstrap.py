"""From a settings file to validated settings and loaded plugins, in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fastplug.config.errors import FastplugError, Problem
from fastplug.config.models import CoreSettings
from fastplug.config.settings import Settings
from fastplug.config.sources import load_raw
from fastplug.config.validation import validate_section
from fastplug.core.manager import Plugins, load_plugins


def load(
    path: str | os.PathLike[str] | None = None,
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    extra_plugins: Mapping[str, Any] | None = None,
) -> tuple[Settings, Plugins]:
    """Load ``settings.toml`` for ``env``, then the plugins it enables.

    ``overrides`` (a nested dict) is layered on top of everything, for tests;
    ``extra_plugins`` adds plugin objects (modules, instances) by name, as if installed.
    Raises :class:`FastplugError` with every problem found.
    """
    raw = load_raw(path, env, overrides)
    core, problems = validate_section(CoreSettings, raw.values, raw, (), problem_id="fastplug.E010")
    if core is None:
        listed = raw.values.get("plugins")
        ok = isinstance(listed, list) and all(isinstance(p, str) for p in listed)
        core = CoreSettings.model_construct(plugins=listed if ok else [])
    try:
        settings, plugins = load_plugins(raw, core, extra_plugins)
    except FastplugError as exc:
        problems.extend(exc.problems)
    if problems:
        raise FastplugError(_dedupe(problems))
    return settings, plugins


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
