"""``GET /products`` (keyset pages, by category), ``GET /products/{product_id}`` (both cached),
``POST /products`` and ``PATCH /products/{product_id}`` (invalidate, once committed, only the
cached answers they change: the tags are in ``fastplug.plugins.products.api``)."""

# no ``from __future__ import annotations``: the handlers' annotations name build_router's
# locals (page sizes from settings), so they must be evaluated where they are written
from operator import itemgetter
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import Integer, String, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from fastplug.core import (
    CURSOR_PATTERN,
    INT32_MAX,
    TOO_LARGE,
    UNAVAILABLE,
    ErrorOut,
    JsonBytes,
    decode_cursor,
    page_of,
    serializer,
)
from fastplug.plugins.cache.api import CacheTags, OptionalCache, cached, invalidate_committed
from fastplug.plugins.db.api import DbReader, DbSession, ReadQuery
from fastplug.plugins.products.api import LIST_TAG, TAG, product_tag
from fastplug.plugins.products.models import Product
from fastplug.plugins.products.schemas import LINE_PATTERN, ProductIn, ProductOut, ProductPage, ProductPatch
from fastplug.plugins.products.settings import ProductsSettings

NOT_FOUND = "product not found"
DUPLICATE = "a product with this SKU already exists"
LOCATION = {"description": "the new product's path", "schema": {"type": "string"}}
# OpenAPI links: what a client (and schemathesis' stateful tests) can do with a product answered
_BY_ID = {"product_id": "$response.body#/id"}
LINKS = {
    "GetProduct": {"operationId": "get_product", "parameters": _BY_ID},
    "UpdateProduct": {"operationId": "update_product", "parameters": _BY_ID},
}

# Core statements over the table's columns, compiled once: no ORM entities per row; on
# PostgreSQL they run on the raw asyncpg pool (fastplug.plugins.db.api), elsewhere through SQLAlchemy
_products = Product.__table__
_columns = select(*_products.c)
_after = _columns.where(_products.c.id > bindparam("after", type_=Integer))
_limit = bindparam("limit", type_=Integer)
ONE = ReadQuery(_columns.where(_products.c.id == bindparam("id", type_=Integer)))
PAGE = ReadQuery(_after.order_by(_products.c.id).limit(_limit))
PAGE_IN_CATEGORY = ReadQuery(  # the (category, id) index
    _after.where(_products.c.category == bindparam("category", type_=String)).order_by(_products.c.id).limit(_limit)
)


def build_router(settings: ProductsSettings) -> APIRouter:
    """The products routes, with page sizes and cache lifetimes from ``[products]``."""
    router = APIRouter(tags=["products"], responses=UNAVAILABLE)
    one, page = serializer(ProductOut), serializer(ProductPage)
    ProductIdPath = Annotated[int, Path(ge=1, le=INT32_MAX)]  # noqa: N806 - a type alias
    not_found = {404: {"model": ErrorOut, "description": "No such product"}}
    duplicate = {
        400: {"model": ErrorOut, "description": "Body is not JSON"},  # FastAPI's answer to undecodable bodies
        409: {"model": ErrorOut, "description": "SKU already used by another product"},
        **TOO_LARGE,
    }
    created = {201: {"headers": {"Location": LOCATION}, "links": LINKS}, **duplicate}

    @router.get("/products", response_model=ProductPage, name="list_products", operation_id="list_products")
    @cached(ttl=settings.cache_ttl, tags=[TAG, LIST_TAG])
    async def list_products(
        db: DbReader,
        tags: CacheTags,
        category: Annotated[str | None, Query(min_length=1, max_length=50, pattern=LINE_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.page_size,
        cursor: Annotated[
            str | None, Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page")
        ] = None,
    ) -> JsonBytes:
        """Products by id (within ``category`` when given), ``limit`` at a time; cached, tagged
        with each product it read."""
        after = decode_cursor(cursor)
        rows: list[Any] = []
        if after < INT32_MAX:  # no id is greater: nothing to ask the database
            if category is None:
                rows = await PAGE.all(db, after=after, limit=limit + 1)
            else:
                rows = await PAGE_IN_CATEGORY.all(db, after=after, category=category, limit=limit + 1)
        tags.extend(product_tag(row["id"]) for row in rows)  # the one past the page too: it sets next_cursor
        return page.response(page_of(rows, limit, key=itemgetter("id")), from_attributes=True)

    @router.get(
        "/products/{product_id}",
        response_model=ProductOut,
        responses=not_found,
        name="get_product",
        operation_id="get_product",
    )
    @cached(ttl=settings.cache_ttl, tags=[TAG])
    async def get_product(product_id: ProductIdPath, db: DbReader, tags: CacheTags) -> JsonBytes:
        """One product; cached, tagged with its id."""
        tags.append(product_tag(product_id))
        product = await ONE.first(db, id=product_id)
        if product is None:
            raise HTTPException(404, NOT_FOUND)
        return one.response(product, from_attributes=True)

    @router.post(
        "/products",
        status_code=201,
        response_model=ProductOut,
        responses=created,
        name="create_product",
        operation_id="create_product",
    )
    async def create_product(body: ProductIn, session: DbSession, cache: OptionalCache) -> JsonBytes:
        """Create a product (a SKU already used is a 409); cached pages are dropped."""
        product = Product(**body.model_dump())
        session.add(product)
        try:
            await session.flush()
        except IntegrityError:
            raise HTTPException(409, DUPLICATE) from None
        await session.commit()
        await invalidate_committed(cache, tags=[LIST_TAG])  # pages may hold it now; nothing else showed it
        location = {"Location": f"/products/{product.id}"}
        return one.response(product, from_attributes=True, status_code=201, headers=location)

    @router.patch(
        "/products/{product_id}",
        response_model=ProductOut,
        responses={200: {"links": LINKS}, **not_found, **duplicate},
        name="update_product",
        operation_id="update_product",
    )
    async def update_product(
        product_id: ProductIdPath, body: ProductPatch, session: DbSession, cache: OptionalCache
    ) -> JsonBytes:
        """Change the given fields (none: the product as it is); the cached answers showing it
        are dropped (and every page, when its category changes)."""
        changes = body.model_dump(exclude_unset=True)
        if not changes:
            product = await session.get(Product, product_id)
        else:
            statement = (
                update(Product)
                .where(Product.id == product_id)
                .values(**changes)
                .returning(Product)
                .execution_options(synchronize_session=False)
            )
            try:
                product = await session.scalar(statement)
            except IntegrityError:
                raise HTTPException(409, DUPLICATE) from None
        if product is None:
            raise HTTPException(404, NOT_FOUND)
        if changes:
            await session.commit()
            moved = [LIST_TAG] if "category" in changes else []
            await invalidate_committed(cache, tags=[product_tag(product_id), *moved])
        return one.response(product, from_attributes=True)

    return router
