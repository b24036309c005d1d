"""Request and response bodies of the users routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from fastplug.core import INT32_MAX, UtcDatetime

Email = Annotated[EmailStr, Field(max_length=254, examples=["ada@example.com"])]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", examples=["Ada Lovelace"])]
UserId = Annotated[int, Field(ge=1, le=INT32_MAX)]


class UserIn(BaseModel):
    """A new user; the email is stored lower-cased and must be unique (case-insensitively)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email
    name: Name


class UserOut(BaseModel):
    """A user as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: UserId
    email: str
    name: str
    created_at: UtcDatetime


class UserPage(BaseModel):
    """One page of users, by id; pass ``next_cursor`` as ``cursor`` for the next (null: last page)."""

    model_config = ConfigDict(from_attributes=True)

    items: list[UserOut]
    next_cursor: str | None
