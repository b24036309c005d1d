"""Raw settings: dynaconf layers settings.toml, .secrets.toml and FASTPLUG_* variables.

dynaconf does the loading and merging. Two things are added on top of it:

* lists are *replaced* by the higher layer, not appended (dynaconf's global merge
  appends, so ``[production] plugins = [...]`` would otherwise extend ``[default]``);
* every leaf value is attributed to the layer it came from, for ``manage.py settings``
  and for error messages (``settings.toml [production.db] pool_size: ...``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastplug.config.errors import FastplugError, Problem

ENV_PREFIX = "FASTPLUG"
SETTINGS_ENVVAR = "FASTPLUG_SETTINGS"
ENV_ENVVAR = "FASTPLUG_ENV"
DEFAULT_ENV = "development"
ENVIRONMENTS = ("default", "development", "production")
# FASTPLUG_* variables that select *how* settings load, not settings themselves.
_CONTROL_KEYS = {"settings", "env"}

Path_ = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a value came from: a file table, an environment variable, a default..."""

    kind: str  # "file", "secrets", "env", "override", "default"
    label: str  # e.g. "settings.toml [production.db]" or "FASTPLUG_DB__URL"

    def __str__(self) -> str:
        return self.label


@dataclass(slots=True)
class RawSettings:
    """The merged settings dict for one environment, with the source of each leaf."""

    path: Path
    env: str
    values: dict[str, Any]
    sources: dict[Path_, Source] = field(default_factory=dict)

    def source_of(self, path: Path_) -> Source | None:
        """The source of ``path`` or of its nearest ancestor that has one."""
        while path:
            if path in self.sources:
                return self.sources[path]
            path = path[:-1]
        return None

    def section_label(self, section: str) -> str:
        """Where to tell the user to look for ``[section]``: the table that defines it, else
        ``[default.<section>]`` (where a new section belongs)."""
        tables = {str(s) for p, s in self.sources.items() if p[:1] == (section,) and s.kind in ("file", "secrets")}
        for table in sorted(tables):
            if table.endswith(f"[{self.env}.{section}]"):
                return table
        return min(tables) if tables else f"{self.path.name} [default.{section}]"


def settings_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The settings file to load: ``path``, ``$FASTPLUG_SETTINGS``, or ./settings.toml."""
    chosen = path or os.environ.get(SETTINGS_ENVVAR) or "settings.toml"
    return Path(chosen).expanduser().resolve()


def _read_toml(path: Path, kind: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if kind == "secrets":
            return {}
        raise FastplugError(
            [
                Problem(
                    "fastplug.E002",
                    f"{path}: settings file not found",
                    f"create it, or point {SETTINGS_ENVVAR} at one",
                )
            ]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise FastplugError(
            [Problem("fastplug.E003", f"{path.name}: invalid TOML: {exc}", f"fix the syntax in {path}")]
        ) from None
    problems = [
        Problem(
            "fastplug.E004",
            f"{path.name}: top-level key '{key}' is outside any environment table",
            "put settings under [default], [development] or [production]",
        )
        for key, value in data.items()
        if not isinstance(value, dict)
    ]
    if problems:
        raise FastplugError(problems)
    return data


def _lower_keys(value: Any) -> Any:
    """Lowercase identifier-like keys (dynaconf uppercases names from env vars)."""
    if isinstance(value, Mapping):
        return {(k.lower() if isinstance(k, str) and k.isidentifier() else k): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _walk(value: Any, prefix: Path_ = ()) -> list[tuple[Path_, Any]]:
    """(path, leaf) pairs; lists and empty tables are leaves."""
    if isinstance(value, Mapping) and value:
        out: list[tuple[Path_, Any]] = []
        for k, v in value.items():
            out.extend(_walk(v, (*prefix, str(k))))
        return out
    return [(prefix, value)]


def _env_layer() -> dict[Path_, Any]:
    from dynaconf.utils.parse_conf import parse_conf_data

    layer: dict[Path_, Any] = {}
    head = ENV_PREFIX + "_"
    for name, raw in os.environ.items():
        if not name.startswith(head):
            continue
        parts = tuple(p.lower() for p in name[len(head) :].split("__"))
        if parts[0] in _CONTROL_KEYS and len(parts) == 1:
            continue
        layer[parts] = (name, parse_conf_data(raw, tomlfy=True))
    return layer


def _get_path(source: Mapping[str, Any], path: Path_) -> Any:
    for part in path:
        if not isinstance(source, Mapping):
            return None
        source = source.get(part)  # type: ignore[assignment]
    return source if isinstance(source, Mapping) else None


def _set_path(target: dict[str, Any], path: Path_, value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``top`` onto ``base``: tables merge key by key, everything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_raw(
    path: str | os.PathLike[str] | None = None,
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RawSettings:
    """Load and merge the settings for ``env`` (default ``$FASTPLUG_ENV`` or development).

    Raises :class:`FastplugError` naming the file and line for a TOML syntax error.
    """
    from dynaconf import Dynaconf

    file = settings_path(path)
    env = (env or os.environ.get(ENV_ENVVAR) or DEFAULT_ENV).lower()
    secrets = file.with_name(".secrets.toml")
    layers: list[tuple[Source, dict[str, Any]]] = []
    for kind, f in (("file", file), ("secrets", secrets)):
        data = _read_toml(f, kind)
        if kind == "file" and env != "default" and env not in data and env not in ENVIRONMENTS:
            raise FastplugError(
                [
                    Problem(
                        "fastplug.E005",
                        f"{file.name}: environment '{env}' ({ENV_ENVVAR}) has no [{env}] table",
                        "use default, development, production or add the table",
                    )
                ]
            )
        for table in ("default", env):
            if isinstance(data.get(table), dict):
                layers.append((Source(kind, f"{f.name} [{table}]"), data[table]))

    dyn = Dynaconf(
        settings_files=[str(file)],
        secrets=str(secrets) if secrets.exists() else None,
        environments=True,
        env=env,
        env_switcher=ENV_ENVVAR,
        envvar_prefix=ENV_PREFIX,
        merge_enabled=True,
        load_dotenv=False,
        root_path=str(file.parent),
    )
    merged = _lower_keys(dyn.as_dict(internal=False))
    for key in (*_CONTROL_KEYS, "load_dotenv"):
        merged.pop(key, None)
    for key in [k for k in merged if k.endswith("_for_dynaconf")]:
        merged.pop(key)

    # Attribute each leaf to the last layer that set it; lists take that layer's value.
    sources: dict[Path_, Source] = {}
    for source, table in layers:
        for leaf_path, leaf in _walk(_lower_keys(table)):
            label = source.label[:-1] + "." + ".".join(leaf_path[:-1]) + "]" if len(leaf_path) > 1 else source.label
            sources[leaf_path] = Source(source.kind, label)
            if isinstance(leaf, list):
                _set_path(merged, leaf_path, leaf)
    for leaf_path, (name, leaf) in _env_layer().items():
        sources[leaf_path] = Source("env", name)
        leaf = _lower_keys(leaf)
        if isinstance(leaf, dict):  # a table from a variable merges like a file's table
            leaf = deep_merge(_get_path(merged, leaf_path) or {}, leaf)
        _set_path(merged, leaf_path, leaf)
    if overrides:
        merged = deep_merge(merged, _lower_keys(overrides))
        for leaf_path, _ in _walk(_lower_keys(overrides)):
            sources[leaf_path] = Source("override", "override")
    return RawSettings(path=file, env=env, values=merged, sources=sources)
