"""The effective settings, flattened, with sources and secrets masked."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from fastplug.config.masking import MASK, mask_url
from fastplug.config.settings import Settings
from fastplug.config.validation import is_secret


def mask(key: str, value: Any) -> Any:
    """Hide secrets: SecretStr values, secret-looking keys, and in a URL (or any text holding
    URLs) the password and secret-named query parameters, found by parsing each URL."""
    # a true/false is no secret, whatever its name says (allow_credentials)
    if isinstance(value, (SecretStr, SecretBytes)) or (
        is_secret(key) and value not in (None, "") and not isinstance(value, bool)
    ):
        return MASK
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask(key, v) for v in value]
    if isinstance(value, str):
        return mask_url(value)
    if value is None or isinstance(value, (bool, int, float, dict)):
        return value
    text = str(value)  # a URL object, a path...: shown as its text
    return mask_url(text) if "://" in text else value


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out.extend(_flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return [(prefix, value)]


def effective_settings(settings: Settings) -> list[tuple[str, Any, str]]:
    """``(dotted key, value, source)`` for every core and enabled-plugin setting."""
    core = settings.core
    tree: dict[str, Any] = {name: getattr(core, name) for name in type(core).model_fields}
    tree.update(settings.sections)
    rows = []
    for key, value in _flatten("", tree):
        path = tuple(key.split("."))
        source = settings.raw.source_of(path)
        rows.append((key, mask(path[-1], value), str(source) if source else "default"))
    return rows
