"""Models declared with ``backref=`` (for the lazy="raise" test)."""

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fastplug.plugins.db.api import Base


class Shelf(Base):
    __tablename__ = "t_shelves"
    id: Mapped[int] = mapped_column(primary_key=True)
    books = relationship("Book", backref="shelf")


class Book(Base):
    __tablename__ = "t_books"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("t_shelves.id"))
