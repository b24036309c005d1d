"""Validate a settings section with its pydantic model; turn errors into one-line problems."""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import annotated_types as at
from pydantic import AnyUrl, BaseModel, SecretBytes, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from fastplug.config.errors import Problem
from fastplug.config.masking import MASK as MASK  # re-exported
from fastplug.config.masking import leaks_password, mask_secrets, mask_url, secret_name
from fastplug.config.sources import Path_, RawSettings

M = TypeVar("M", bound=BaseModel)

_TYPE_WORDS: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    bool: "a boolean (true or false)",
    str: "a string",
    SecretStr: "a string (secret)",
    SecretBytes: "a string (secret)",
    list: "a list",
    tuple: "a list",
    set: "a list",
    dict: "a table",
    AnyUrl: "a URL",
}
_CONSTRAINTS: tuple[tuple[type, str, str], ...] = (
    (at.Ge, "ge", ">="),
    (at.Gt, "gt", ">"),
    (at.Le, "le", "<="),
    (at.Lt, "lt", "<"),
    (at.MinLen, "min_length", "at least length"),
    (at.MaxLen, "max_length", "at most length"),
)


def _is_secret_type(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_is_secret_type(a) for a in typing.get_args(annotation))


def is_secret(key: str, field: FieldInfo | None = None) -> bool:
    """True when a value must never be shown: a ``SecretStr`` field or a secret-looking name."""
    if field is not None and _is_secret_type(field.annotation):
        return True
    return secret_name(key)


def describe_type(annotation: Any) -> str:
    """Human words for a type annotation: ``int`` -> 'an integer'."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        words = " or ".join(describe_type(a) for a in args)
        return words if len(args) == len(typing.get_args(annotation)) else f"{words} (or omitted)"
    if origin is typing.Annotated:
        return describe_type(typing.get_args(annotation)[0])
    base = origin or annotation
    if base in _TYPE_WORDS:
        return _TYPE_WORDS[base]
    if isinstance(base, type) and issubclass(base, BaseModel):
        return "a table"
    if isinstance(base, type) and base.__name__.endswith(("Url", "Dsn")):  # pydantic's URL types
        return "a URL"
    return getattr(base, "__name__", str(base))


def describe_field(field: FieldInfo) -> str:
    """What a field accepts, constraints included: 'an integer >= 1'."""
    limits: list[str] = []
    for meta in field.metadata:
        for cls, attr, sign in _CONSTRAINTS:
            if isinstance(meta, cls):
                limits.append(f"{sign} {getattr(meta, attr)}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            limits.append(f"matching {pattern}")
    return " ".join([describe_type(field.annotation), " and ".join(limits)]).strip()


mask_url_password = mask_secrets
"""The former name of :func:`~fastplug.config.masking.mask_secrets`, kept for compatibility."""


def show_value(value: Any, secret: bool) -> str:
    """A value as the user wrote it (passwords in URLs masked), or ``<hidden>`` for secrets."""
    if secret:
        return "<hidden>"
    try:
        text = json.dumps(mask_url(value)) if isinstance(value, str) else mask_secrets(json.dumps(value, default=str))
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _field_for(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    """The field a validation error points at, through nested models; ``None`` if unknown."""
    field: FieldInfo | None = None
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not isinstance(fields, Mapping) or part not in fields:
            return None
        field = fields[part]
        current = field.annotation
    return field


def validate_section(
    model: type[M],
    data: Any,
    raw: RawSettings,
    section: Path_,
    problem_id: str = "fastplug.E010",
) -> tuple[M | None, list[Problem]]:
    """Validate ``data`` (the table at ``section``) against ``model``.

    Returns the instance, or ``None`` and one problem per error, each naming the file
    table (or environment variable), the key, what was expected and what was found.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        where = raw.source_of(section) or raw.section_label(section[0])
        return None, [
            Problem(problem_id, f"{where} {'.'.join(section)}: expected a table, got {show_value(data, False)}")
        ]
    try:
        return model.model_validate(dict(data)), []
    except ValidationError as exc:
        return None, [_problem(model, section, raw, err, problem_id) for err in exc.errors()]


def _where(raw: RawSettings, section: Path_, path: Path_, key: str) -> str:
    """'settings.toml [production.db] pool_size', or the variable that set the value."""
    sec = ".".join(section) or (path[0] if path else "")
    found = path
    while found and found not in raw.sources:
        found = found[:-1]
    if not found:
        return f"{raw.section_label(sec)} {key}" if section else f"{raw.path.name} [{raw.env}] {key}"
    source = raw.sources[found]
    if source.kind in ("env", "override"):
        return f"{source} ({'.'.join(path)})"
    return f"{source} {'.'.join(path[len(found) - 1 :])}"


def _problem(model: type[BaseModel], section: Path_, raw: RawSettings, err: Any, problem_id: str) -> Problem:
    loc = tuple(err["loc"])
    path = (*section, *(str(p) for p in loc))
    key = ".".join(str(p) for p in loc) or ".".join(section)
    where = _where(raw, section, path, key)
    field = _field_for(model, loc)
    secret = is_secret(key, field)
    kind = err["type"]
    if kind == "extra_forbidden":
        known = list(model.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known) or '(none)'}"
        return Problem(problem_id, f"{where}: unknown key", hint)
    expected = describe_field(field) if field is not None else None
    if kind == "missing":
        return Problem(problem_id, f"{where}: required value missing" + (f" (expected {expected})" if expected else ""))
    msg = err["msg"].removeprefix("Value error, ")
    if expected is None:
        expected = msg[len("Input should be ") :] if msg.startswith("Input should be ") else msg
        return Problem(problem_id, f"{where}: expected {expected}, got {show_value(err.get('input'), secret)}")
    got = show_value(err.get("input"), secret)
    value = err.get("input")
    if secret or (isinstance(value, str) and leaks_password(msg, value)):
        detail = ""  # pydantic's detail may tell a secret's length; a parser's may quote a password
    elif msg.startswith("Input should be a valid") and ", " in msg and ", unable to" not in msg:
        detail = f" ({msg.split(', ', 1)[1]})"  # e.g. "invalid port number"
    elif msg.startswith("Input should be"):
        detail = ""  # said by `expected`
    else:
        detail = f" ({mask_secrets(msg)})"
    return Problem(problem_id, f"{where}: expected {expected}, got {got}{detail}")
