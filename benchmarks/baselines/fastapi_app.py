"""FastAPI's default response-model path: what a FastAPI app returns and FastAPI serializes.

No middleware. Every route returns Python objects and lets FastAPI validate them against
the response model and serialize them (since 0.165: ``validate`` then ``dump_json``, no
``jsonable_encoder``):

* ``GET /bench/list20k``: the 20 KB page of ``payload.py``. ``app`` returns it as dicts
  (``-> Page``: what most handlers do with rows they built); ``models_app`` returns the
  same page as ``Page`` instances built once at import (FastAPI checks them; pydantic
  does not re-validate instances: ``revalidate_instances="never"``).
* ``GET /products?category=&limit=&cursor=``: the products plugin's route written the usual
  way: a SQLAlchemy session per request (``Depends``), ``response_model=ProductPage``, ORM
  objects returned (pool of 10 like the fastplug targets, no pre-ping), the products
  plugin's own ``ProductPage`` and keyset cursor (so the bytes are the same).

Run: ``uvicorn --app-dir benchmarks/baselines fastapi_app:app`` (or ``:models_app``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from domain import LIST_PATH, Page, ProductPage, async_url, domain_dsn, page_dict, page_of
from fastapi import Depends, FastAPI, Query
from fastapi.responses import Response
from querycount import maybe_counted
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastplug.core.paging import decode_cursor

LIVE = b'{"status":"ok"}'


class Base(DeclarativeBase):
    pass


class Product(Base):
    """The products plugin's table, declared here (self-contained)."""

    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str]
    name: Mapped[str]
    description: Mapped[str]
    category: Mapped[str]
    price: Mapped[Decimal]
    stock: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


resources: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """An engine on the seeded domain database, when the run made one."""
    dsn = domain_dsn()
    if dsn:
        engine = create_async_engine(async_url(dsn), pool_size=10, max_overflow=0)
        resources["sessionmaker"] = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    yield
    if "sessionmaker" in resources:
        await resources.pop("sessionmaker").kw["bind"].dispose()


async def get_db() -> AsyncIterator[AsyncSession]:
    """A session per request, FastAPI tutorial style."""
    async with resources["sessionmaker"]() as session:
        yield session


def create(models: bool) -> FastAPI:
    """The app; ``models``: ``/bench/list20k`` returns prebuilt ``Page`` instances."""
    app = FastAPI(title="fastapi-default", lifespan=lifespan)

    @app.get("/health/live")
    async def live() -> Response:
        return Response(LIVE, media_type="application/json")

    if models:
        page = Page.model_validate(page_dict())

        @app.get(LIST_PATH)
        async def list_models() -> Page:
            return page

    else:
        data = page_dict()

        @app.get(LIST_PATH)
        async def list_dicts() -> Page:
            return data  # type: ignore[return-value]  # FastAPI validates it into Page

    @app.get("/products", response_model=ProductPage)
    async def list_products(
        db: Annotated[AsyncSession, Depends(get_db)],
        category: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> Any:
        query = select(Product).where(Product.id > decode_cursor(cursor))
        if category is not None:
            query = query.where(Product.category == category)
        rows = (await db.scalars(query.order_by(Product.id).limit(limit + 1))).all()
        return page_of(rows, limit)

    return app


app = maybe_counted(create(models=False))
models_app = maybe_counted(create(models=True))
