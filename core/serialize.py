"""Serialize once: response bodies straight to JSON bytes by pydantic's Rust serializer.

FastAPI's response-model path validates what a handler returns against the model, then
serializes it. When the handler already holds the right shape (model instances, or rows
turned into models by one ``from_attributes`` validation), the first pass is wasted. A
:class:`JsonSerializer` holds one cached ``TypeAdapter`` per type and goes from values to
bytes in one call, and :meth:`JsonSerializer.response` returns a :class:`JsonBytes`
response, which FastAPI sends as is (no validation, no ``jsonable_encoder``, no
``json.dumps``). Keep ``response_model=`` on the route so OpenAPI still documents it::

    from fastplug.core.serialize import serializer

    page = serializer(ProductPage)

    @router.get("/products", response_model=ProductPage)
    async def list_products(session: DbReadSession) -> JsonBytes:
        rows = (await session.scalars(select(Product).limit(100))).all()
        return page.response({"items": rows, "next_cursor": None}, from_attributes=True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter
from pydantic_core import to_json
from starlette.background import BackgroundTask
from starlette.responses import Response

T = TypeVar("T")

JSON = "application/json"


class JsonBytes(Response):
    """A response whose body is JSON bytes already; ``Content-Length`` is set once."""

    media_type = JSON

    def __init__(
        self,
        body: bytes,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        # Response.__init__ minus render(): the body is final
        self.status_code = status_code
        self.background = background
        self.body = body
        self.init_headers(headers)


class JsonSerializer(Generic[T]):
    """JSON bytes of values of one type, through one cached ``TypeAdapter``.

    :meth:`dump` trusts the value's shape (model instances, or plain data of a
    ``TypedDict``/dataclass type): it is serialized, not validated. :meth:`dump` with
    ``from_attributes=True`` first builds the models from objects' attributes (ORM rows) or
    from mappings (:func:`records`) in one Rust pass, then serializes.
    """

    __slots__ = ("adapter", "by_alias", "exclude_none")

    def __init__(self, tp: Any, *, by_alias: bool = True, exclude_none: bool = False) -> None:
        self.adapter: TypeAdapter[T] = TypeAdapter(tp)
        self.by_alias = by_alias
        self.exclude_none = exclude_none

    def dump(self, value: Any, *, from_attributes: bool = False) -> bytes:
        """``value`` as JSON bytes."""
        if from_attributes:
            value = self.adapter.validate_python(value, from_attributes=True)
        return self.adapter.dump_json(value, by_alias=self.by_alias, exclude_none=self.exclude_none)

    def response(
        self,
        value: Any,
        *,
        from_attributes: bool = False,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> JsonBytes:
        """``value`` as a :class:`JsonBytes` response."""
        return JsonBytes(self.dump(value, from_attributes=from_attributes), status_code, headers)


def trusted(value: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None) -> JsonBytes:
    """Send ``value`` (dicts, lists, str, numbers, datetimes, UUIDs, Decimals, models) as JSON
    without validating it: for data the handler already trusts, on a route that keeps its
    ``response_model=`` for OpenAPI::

        @router.get("/items", response_model=list[Item])
        async def items() -> JsonBytes:
            return trusted(await load_items())  # not checked against list[Item]

    One pass of pydantic-core's ``to_json`` (compact, UTF-8, like FastAPI's output), with no
    ``response_model`` validation, no ``include``/``exclude`` and no alias mapping: whatever
    the value holds is sent as it is. Non-finite floats become ``null``.
    """
    return JsonBytes(to_json(value), status_code, headers)


def records(rows: Iterable[Sequence[Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Database rows as dicts, by position: ``records(result.all(), result.keys())``.

    ``from_attributes`` reads a SQLAlchemy ``Row`` field by field through its name lookup,
    about 3.5 us per 9-column row here; zipping the keys once over each row costs 0.5 us, and
    pydantic validates the dicts in Rust (a 100-row page: 477 -> 237 us, validation and
    ``dump_json`` included). Pass the dicts to :meth:`JsonSerializer.dump` with
    ``from_attributes=True`` (which validates mappings as well as objects).
    """
    keys = tuple(keys)
    return [dict(zip(keys, row, strict=True)) for row in rows]


@lru_cache(maxsize=512)
def serializer(tp: Any, *, by_alias: bool = True, exclude_none: bool = False) -> JsonSerializer[Any]:
    """The shared :class:`JsonSerializer` of ``tp`` (built once per type and options)."""
    return JsonSerializer(tp, by_alias=by_alias, exclude_none=exclude_none)
