"""Request and response bodies of the users routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from fastplug.core import INT32_MAX, UtcDatetime

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_ATOM}(\.{_ATOM})*@({_LABEL}\.)+[A-Za-z]{{2,63}}$"
"""An address as most providers take it: a dot-atom local part (no quoted strings), a domain of
LDH labels (at most 63 characters each) ending in an alphabetic top-level domain."""
LOCAL_PART_MAX = 64  # RFC 5321 4.5.3.1.1; the schema's ``format: email`` says it


def _local_part_fits(email: str) -> str:
    if len(email.rpartition("@")[0]) > LOCAL_PART_MAX:
        raise ValueError(f"the part before @ has at most {LOCAL_PART_MAX} characters")
    return email


# The pattern, the length and the local part's limit are the whole rule, and the schema states
# each (a general validator would also refuse addresses the schema allows, e.g. `a@b.test`)
Email = Annotated[
    str,
    Field(max_length=254, pattern=EMAIL_PATTERN, json_schema_extra={"format": "email"}, examples=["ada@example.com"]),
    AfterValidator(_local_part_fits),
]
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
