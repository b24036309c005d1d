"""A small plugin on the db plugin's services, used by the db tests (in-process and as an
installed entry point): two related tables, routes that write, fail, hold a connection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String, func, select, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fastplug.core import PluginInfo, hookimpl
from fastplug.plugins.db.api import Base, DbReadConnection, DbReadSession, DbSession, RawConnection, RawPool

MIGRATIONS = Path(__file__).with_name("db_notes_migrations")


class Author(Base):
    __tablename__ = "t_authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    notes: Mapped[list[Note]] = relationship(back_populates="author")


class Note(Base):
    __tablename__ = "t_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("t_authors.id"))
    text: Mapped[str] = mapped_column(String(500))
    author: Mapped[Author] = relationship(back_populates="notes")


class NoteIn(BaseModel):
    author: str
    text: str


router = APIRouter()


@router.post("/notes", status_code=201)
async def create_note(body: NoteIn, session: DbSession) -> dict[str, int]:
    author = await session.scalar(select(Author).where(Author.name == body.author))
    if author is None:
        author = Author(name=body.author)
        session.add(author)
    note = Note(author=author, text=body.text)
    session.add(note)
    await session.flush()
    return {"id": note.id}


@router.post("/notes/then-fail")
async def create_then_fail(body: NoteIn, session: DbSession) -> None:
    session.add(Note(author=Author(name=body.author), text=body.text))
    await session.flush()
    raise HTTPException(409, "changed my mind")


@router.get("/notes/count")
async def count_notes(session: DbSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Note)) or 0)


@router.get("/notes/count-read")
async def count_notes_read_only(session: DbReadSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Note)) or 0)


@router.get("/notes/count-connection")
async def count_notes_on_a_connection(connection: DbReadConnection) -> dict[str, object]:
    count = await connection.scalar(select(func.count()).select_from(Note))
    return {"count": count, "isolation": connection.sync_connection.get_execution_options().get("isolation_level")}


@router.get("/authors/count")
async def count_authors(session: DbSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Author)) or 0)


@router.post("/notes/autocommitted")
async def insert_without_commit(connection: DbReadConnection) -> None:
    """A write through the read connection persists at once: nothing commits it."""
    await connection.execute(Author.__table__.insert().values(name="auto"))


@router.get("/hold")
async def hold(session: DbSession, seconds: float = 1.0) -> str:
    await session.execute(text("SELECT 1"))  # the connection stays checked out until commit
    await asyncio.sleep(seconds)
    return "held"


@router.get("/raw")
async def raw(connection: RawConnection) -> int:
    return int(await connection.fetchval("SELECT 41 + 1"))


@router.get("/raw/hold")
async def raw_hold(connection: RawConnection, seconds: float = 1.0) -> str:
    await connection.execute(f"SELECT pg_sleep({float(seconds)})")
    return "held"


@router.get("/raw/pooled")
async def raw_pooled(pool: RawPool) -> int:
    return int(await pool.fetchval("SELECT 40 + 2"))


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(name="notes", requires=("db",))


@hookimpl
def register_routers() -> Sequence[APIRouter]:
    return [router]


@hookimpl
def register_models() -> Sequence[type]:
    return [Author, Note]


@hookimpl
def register_migrations() -> Path:
    return MIGRATIONS
