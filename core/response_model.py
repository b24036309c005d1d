"""Response models validated into plain dicts: the same bytes as FastAPI, in less time.

FastAPI validates what a handler returns against the route's ``response_model``, which builds
a model instance for every model in the answer (200 items: 200 instances), then serializes
those instances to JSON. When the handler returns dicts, the instances are thrown away at
once. :class:`FastplugRoute` validates the same data against a *mirror* of the response
model's core schema in which every model is the equivalent ``TypedDict``: the same fields,
aliases, defaults, constraints and config, the same field validators, so the same coercions
and the same errors, but plain dicts out, which pydantic-core builds and serializes about
twice as fast. The bytes are the ones FastAPI sends.

The mirror is used only where it is known to be equivalent, decided once when the route is
built:

* no model-level validator or serializer, no ``field_serializer`` or other function
  serializer, no computed field, no ``extra="allow"``, no root model or custom ``__init__``;
* no union that has a model inside (a smart union ranks dicts and models differently);
* not ``response_model_exclude_unset`` (plain dicts do not remember which fields were set).

Everything else, and every value the mirror rejects (model instances, ORM objects, invalid
data), goes through FastAPI's own path unchanged, so errors and their 500 are FastAPI's.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from pydantic_core import SchemaSerializer, SchemaValidator, ValidationError
from starlette.requests import Request
from starlette.responses import Response

_FUNCTIONS = frozenset({"function-before", "function-after", "function-wrap", "function-plain"})
_UNIONS = frozenset({"union", "tagged-union"})


class _UnsupportedError(Exception):
    """The schema has something the mirror does not reproduce exactly."""


def _has_model(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("type") == "model":
            return True
        return any(_has_model(v) for k, v in node.items() if k not in ("metadata", "config"))
    if isinstance(node, list):
        return any(_has_model(v) for v in node)
    return False


def _field(field: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "typed-dict-field",
        "schema": _mirror(field["schema"]),
        "required": field["schema"].get("type") != "default",
    }
    for key in ("validation_alias", "serialization_alias", "serialization_exclude", "metadata"):
        if key in field:
            out[key] = field[key]
    if field.get("serialization_exclude_if") is not None:
        raise _UnsupportedError("serialization_exclude_if")
    return out


def _model(node: dict[str, Any]) -> dict[str, Any]:
    fields = node.get("schema", {})
    if fields.get("type") != "model-fields":
        raise _UnsupportedError(f"model schema {fields.get('type')}")
    for key in ("custom_init", "root_model", "post_init", "serialization"):
        if node.get(key):
            raise _UnsupportedError(key)
    if fields.get("computed_fields") or fields.get("extras_schema") or fields.get("extras_keys_schema"):
        raise _UnsupportedError("computed or extra fields")
    config = dict(node.get("config") or {})
    extra = fields.get("extra_behavior") or config.get("extra_fields_behavior") or "ignore"
    if extra == "allow":
        raise _UnsupportedError("extra='allow'")
    out: dict[str, Any] = {
        "type": "typed-dict",
        "fields": {name: _field(field) for name, field in fields["fields"].items()},
        "extra_behavior": extra,
        "total": True,
        "config": config,
    }
    for key in ("ref", "strict", "metadata"):
        if key in node:
            out[key] = node[key]
    return out


def _mirror(node: Any) -> Any:
    if isinstance(node, list):
        return [_mirror(v) for v in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "model":
        return _model(node)
    if kind in _FUNCTIONS:
        if _has_model(node.get("schema")):
            raise _UnsupportedError(f"{kind} validator around a model")
        return node  # a field validator of plain values: the same function, the same values
    if kind in _UNIONS and _has_model(node):
        raise _UnsupportedError("a union with a model inside")
    serialization = node.get("serialization")
    if isinstance(serialization, dict) and serialization.get("type", "").startswith("function"):
        raise _UnsupportedError("a function serializer")
    return {k: (v if k in ("metadata", "config", "serialization") else _mirror(v)) for k, v in node.items()}


class Mirror:
    """The validator and serializer of a response model's dict mirror."""

    __slots__ = ("serializer", "validator")

    def __init__(self, schema: Any) -> None:
        self.validator = SchemaValidator(schema)
        self.serializer = SchemaSerializer(schema)


def mirror_of(schema: Any) -> Mirror | None:
    """The dict mirror of a core schema, or ``None`` when it would not be exact (or has no
    model in it: then there is nothing to gain)."""
    if not _has_model(schema):
        return None
    try:
        return Mirror(_mirror(schema))
    except (_UnsupportedError, TypeError, KeyError):
        return None
    except Exception:  # pydantic-core refused the schema (SchemaError): keep FastAPI's path
        return None


class _Validated:
    """A value validated by the mirror, on its way to :meth:`MirroredField.serialize_json`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class MirroredField:
    """FastAPI's response field, validating into dicts first (see the module docstring).

    Only ``get_request_handler``'s serialization step sees it; the route keeps FastAPI's own
    ``response_field`` for OpenAPI and everything else.
    """

    __slots__ = ("field", "mirror")

    def __init__(self, field: Any, mirror: Mirror) -> None:
        self.field = field
        self.mirror = mirror

    def validate(
        self, value: Any, values: dict[str, Any] | None = None, *, loc: tuple[int | str, ...] = ()
    ) -> tuple[Any, list[dict[str, Any]]]:
        try:
            return _Validated(self.mirror.validator.validate_python(value)), []
        except ValidationError:
            return self.field.validate(value, values or {}, loc=loc)  # FastAPI's path, FastAPI's errors

    def serialize_json(self, value: Any, **options: Any) -> bytes:
        if isinstance(value, _Validated):
            return self.mirror.serializer.to_json(value.value, **options)
        return self.field.serialize_json(value, **options)

    def serialize(self, value: Any, *, mode: str = "json", **options: Any) -> Any:
        if isinstance(value, _Validated):
            return self.mirror.serializer.to_python(value.value, mode=mode, **options)
        return self.field.serialize(value, mode=mode, **options)


def mirrored_field(route: APIRoute) -> MirroredField | None:
    """The route's response field with a dict mirror, when one is exact for this route."""
    field = route.response_field
    if field is None or route.response_model_exclude_unset:
        return None
    adapter = getattr(field, "_type_adapter", None)
    if adapter is None:
        return None
    mirror = mirror_of(adapter.core_schema)
    return None if mirror is None else MirroredField(field, mirror)


class FastplugRoute(APIRoute):
    """An ``APIRoute`` whose response model is validated into dicts where that is exact, and
    whose simplest requests take a shorter path (:mod:`fastplug.core.lean_route`).

    Same OpenAPI, same bytes, same errors as ``APIRoute``; core declares plugin routes with it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._serialized_by: Any = None
        super().__init__(*args, **kwargs)
        from fastplug.core.lean_route import lean_app

        self.app = lean_app(self, self._serialized_by, self.app)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        mirrored = mirrored_field(self)
        self._serialized_by = mirrored or self.response_field
        if mirrored is None:
            return super().get_route_handler()
        original = self.response_field
        self.response_field = mirrored  # type: ignore[assignment]  # read once, by get_request_handler
        try:
            return super().get_route_handler()
        finally:
            self.response_field = original
