"""fastplug.plugins.db.api: Core SELECTs on the raw asyncpg pool when the values would be the same, through
SQLAlchemy otherwise; the same rows either way, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import db_notes
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import JSON, Integer, String, TypeDecorator, bindparam, cast, event, select, type_coerce

from fastplug.core.runtime import Runtime
from fastplug.plugins.db.api import READER, Reader, ReadQuery

Make = Callable[..., FastAPI]
notes = db_notes.Note.__table__
BY_AUTHOR = ReadQuery(
    select(notes.c.id, notes.c.text).where(notes.c.author_id == bindparam("author", type_=Integer)).order_by(notes.c.id)
)
IN_LIST = ReadQuery(select(notes.c.id).where(notes.c.id.in_(bindparam("ids", expanding=True))).order_by(notes.c.id))


class Shout(TypeDecorator[str]):
    """A result processor: SQLAlchemy changes the driver's value, so the raw path must not run."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else value.upper()


LITERALS = ReadQuery(  # values in the statement itself: `> 0`, LIMIT 10, a bindparam with a default
    select(notes.c.id)
    .where(notes.c.id > 0)
    .where(notes.c.author_id == bindparam("author", 1, type_=Integer))
    .order_by(notes.c.id)
    .limit(10)
)
JSON_TEXT = ReadQuery(select(notes.c.id, cast(notes.c.text, JSON).label("doc")).order_by(notes.c.id))
SHOUTED = ReadQuery(select(notes.c.id, type_coerce(notes.c.text, Shout()).label("text")).order_by(notes.c.id))


@pytest.fixture
def make(fastplug_app_factory: Make) -> Make:
    def build(url: str) -> FastAPI:
        db = {"url": url, "auto_migrate": True, "query_count_header": True}
        return fastplug_app_factory(plugins=["db", "notes"], extra_plugins={"notes": db_notes}, db=db)

    return build


def run(client: TestClient, coro: Callable[[], Any]) -> Any:
    return client.portal.call(coro)  # type: ignore[union-attr]


def test_rows_are_the_same_on_either_path(make: Make, db_url: str) -> None:
    app = make(db_url)
    with TestClient(app) as client:
        for text in ("one", "two", "three"):
            assert client.post("/notes", json={"author": "ada", "text": text}).status_code == 201
        reader: Reader = Runtime.of(app).services[READER]
        engine = reader.engine.sync_engine
        through_sqlalchemy: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *args: through_sqlalchemy.append(args[2]))
        plain = Reader(None, reader.engine, reader.gate)  # no raw pool: always SQLAlchemy

        async def both() -> tuple[Any, ...]:
            fast = await BY_AUTHOR.all(reader, author=1)
            slow = await BY_AUTHOR.all(plain, author=1)
            first = await BY_AUTHOR.first(reader, author=1)
            none = await BY_AUTHOR.first(reader, author=999)
            return fast, slow, first, none

        fast, slow, first, none = run(client, both)
    assert fast == slow == [{"id": 1, "text": "one"}, {"id": 2, "text": "two"}, {"id": 3, "text": "three"}]
    assert first == {"id": 1, "text": "one"} and none is None
    sqlalchemy_runs = len(through_sqlalchemy)
    if db_url.startswith("postgresql"):
        assert sqlalchemy_runs == 1  # only the "plain" reader's; the others ran on asyncpg
    else:
        assert sqlalchemy_runs == 4  # SQLite has no raw pool


def test_statements_the_driver_would_answer_differently_go_through_sqlalchemy(make: Make, db_url: str) -> None:
    app = make(db_url)
    with TestClient(app) as client:
        for text in ("one", "two"):
            client.post("/notes", json={"author": "ada", "text": text})
        reader: Reader = Runtime.of(app).services[READER]

        async def reads() -> tuple[Any, ...]:
            return (
                await IN_LIST.all(reader, ids=[2, 1, 7]),
                await SHOUTED.all(reader),
                await LITERALS.all(reader),
                await LITERALS.all(reader, author=2),
            )

        listed, shouted, literals, other_author = run(client, reads)
    assert listed == [{"id": 1}, {"id": 2}]  # an expanding IN list: rendered per execution
    assert shouted == [{"id": 1, "text": "ONE"}, {"id": 2, "text": "TWO"}]  # the type's processor ran
    assert literals == [{"id": 1}, {"id": 2}] and other_author == []


def test_json_is_decoded_the_same_on_either_path(make: Make, pg_url: str) -> None:
    app = make(pg_url)
    with TestClient(app) as client:
        client.post("/notes", json={"author": "ada", "text": '{"a": [1, 2]}'})
        reader: Reader = Runtime.of(app).services[READER]
        plain = Reader(None, reader.engine, reader.gate)

        async def both() -> tuple[Any, Any]:
            return await JSON_TEXT.all(reader), await JSON_TEXT.all(plain)

        fast, slow = run(client, both)
    assert fast == slow == [{"id": 1, "doc": {"a": [1, 2]}}]


def test_raw_reads_count_in_the_query_header(make: Make, pg_url: str) -> None:
    app = make(pg_url)
    with TestClient(app) as client:
        client.post("/notes", json={"author": "ada", "text": "one"})
        reader: Reader = Runtime.of(app).services[READER]
        assert reader.raw is not None
        counter = Runtime.of(app).services["db.queries"]

        async def counted() -> int | None:
            counter.start()
            await BY_AUTHOR.all(reader, author=1)
            await BY_AUTHOR.first(reader, author=1)
            return counter.current()

        assert run(client, counted) == 2
