"""The one declarative ``Base`` every plugin's tables join, with N+1 made an error.

Relationships (and their ``backref`` side) default to ``lazy="raise"``: touching an unloaded
relationship is an error, not a hidden query per row (N+1). Load what a route needs with
``selectinload``/``joinedload``, or give another strategy (``"selectin"``, ``"joined"``,
``"immediate"``...); ``lazy="select"`` is treated as the default and becomes ``"raise"``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, RelationshipProperty

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The one declarative base; every plugin's tables join ``Base.metadata``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for value in list(vars(cls).values()):
            if not isinstance(value, RelationshipProperty):
                continue
            if value.lazy == "select":
                # the default "select" is how N+1 queries happen (set both, as SQLAlchemy's
                # own declarative scan does when it changes a relationship's strategy)
                value.lazy = "raise"
                value.strategy_key = (("lazy", "raise"),)
            if isinstance(value.backref, str):  # the generated reverse side too
                value.backref = (value.backref, {"lazy": "raise"})
            elif isinstance(value.backref, tuple) and "lazy" not in value.backref[1]:
                value.backref = (value.backref[0], {**value.backref[1], "lazy": "raise"})
        super().__init_subclass__(**kwargs)
