"""``POST /users``, ``GET /users/{user_id}``, ``GET /users`` (keyset pages by id)."""

# no ``from __future__ import annotations``: the handlers' annotations name build_router's
# locals (page sizes from settings), so they must be evaluated where they are written
from operator import itemgetter
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import Integer, bindparam, select
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
from fastplug.plugins.db.api import DbReader, DbSession, ReadQuery
from fastplug.plugins.users.models import User
from fastplug.plugins.users.schemas import UserIn, UserOut, UserPage
from fastplug.plugins.users.settings import UsersSettings

NOT_FOUND = "user not found"
DUPLICATE = "a user with this email already exists"
LOCATION = {"description": "the new user's path", "schema": {"type": "string"}}
# OpenAPI links: what a client (and schemathesis' stateful tests) can do with a new user
CREATED_LINKS = {"GetUser": {"operationId": "get_user", "parameters": {"user_id": "$response.body#/id"}}}

# Core statements over the table's columns, compiled once: no ORM entities per row; on
# PostgreSQL they run on the raw asyncpg pool (fastplug.plugins.db.api), elsewhere through SQLAlchemy
_users = User.__table__
_columns = select(*_users.c)
ONE = ReadQuery(_columns.where(_users.c.id == bindparam("id", type_=Integer)))
PAGE = ReadQuery(
    _columns.where(_users.c.id > bindparam("after", type_=Integer))
    .order_by(_users.c.id)
    .limit(bindparam("limit", type_=Integer))
)


def build_router(settings: UsersSettings) -> APIRouter:
    """The users routes, with page sizes from ``[users]``."""
    router = APIRouter(tags=["users"], responses=UNAVAILABLE)
    one, page = serializer(UserOut), serializer(UserPage)

    @router.post(
        "/users",
        status_code=201,
        response_model=UserOut,
        responses={
            201: {"headers": {"Location": LOCATION}, "links": CREATED_LINKS},
            400: {"model": ErrorOut, "description": "Body is not JSON"},
            409: {"model": ErrorOut, "description": "Email already registered"},
            **TOO_LARGE,
        },
        name="create_user",
        operation_id="create_user",
    )
    async def create_user(body: UserIn, session: DbSession) -> JsonBytes:
        """Create a user. The email is stored lower-cased; a duplicate (in any case) is a 409."""
        user = User(email=body.email.lower(), name=body.name)
        session.add(user)
        try:
            await session.flush()  # the unique index decides, so concurrent duplicates are caught too
        except IntegrityError:
            raise HTTPException(409, DUPLICATE) from None
        return one.response(user, from_attributes=True, status_code=201, headers={"Location": f"/users/{user.id}"})

    @router.get(
        "/users/{user_id}",
        response_model=UserOut,
        responses={404: {"model": ErrorOut, "description": "No such user"}},
        name="get_user",
        operation_id="get_user",
    )
    async def get_user(user_id: Annotated[int, Path(ge=1, le=INT32_MAX)], db: DbReader) -> JsonBytes:
        """One user."""
        user = await ONE.first(db, id=user_id)
        if user is None:
            raise HTTPException(404, NOT_FOUND)
        return one.response(user, from_attributes=True)

    @router.get("/users", response_model=UserPage, name="list_users", operation_id="list_users")
    async def list_users(
        db: DbReader,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = settings.page_size,
        cursor: Annotated[
            str | None, Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page")
        ] = None,
    ) -> JsonBytes:
        """Users by id, ``limit`` at a time; stable under inserts (keyset, not offset)."""
        after = decode_cursor(cursor)
        rows: list[Any] = []
        if after < INT32_MAX:  # no id is greater: nothing to ask the database
            rows = await PAGE.all(db, after=after, limit=limit + 1)
        return page.response(page_of(rows, limit, key=itemgetter("id")), from_attributes=True)

    return router
