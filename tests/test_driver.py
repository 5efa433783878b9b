"""The hot statements straight on SQLite's driver (common/driver.py) read and write exactly what SQLAlchemy would:
the same SQL values in the file, the same Python values back, its errors, its one-row rules; what only SQLAlchemy
does right goes through it, in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import bindparam, insert, or_, select
from sqlalchemy.exc import IntegrityError, MultipleResultsFound, NoResultFound

from common import db, driver
from common.db import orm_session
from handoff import store
from handoff.models import Agent, Conversation, Message
from warmline.migrate import upgrade

CONVERSATIONS = Conversation.__table__
MESSAGES = Message.__table__
ADD = driver.hot(insert(MESSAGES).returning(MESSAGES.c.id))
BY_SENDERS = driver.hot(
    select(MESSAGES.c.id, MESSAGES.c.sender, MESSAGES.c.parse, MESSAGES.c.created_at)
    .where(
        MESSAGES.c.conversation_id == bindparam("cid"), or_(MESSAGES.c.sender == "bot", MESSAGES.c.sender == "agent")
    )
    .order_by(MESSAGES.c.id)
)
EXPANDING = driver.hot(select(MESSAGES.c.id).where(MESSAGES.c.sender.in_(["bot", "agent"])))
WITH_DEFAULTS = driver.hot(insert(MESSAGES))  # text and created_at have Python-side defaults


@pytest.fixture
def engine(tmp_path: Path) -> sqlalchemy.Engine:
    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    sqlalchemy.event.listen(engine, "connect", db._sqlite_connect)  # as the on-loop writer's: foreign keys on
    sqlalchemy.event.listen(engine, "begin", driver.begin_unless_begun)
    with engine.begin() as conn:
        store.open_conversation(conn, "c1", {"name": "Ana"})
    return engine


def test_hot_statements_store_and_read_what_sqlalchemy_does(engine: sqlalchemy.Engine) -> None:
    when = datetime(2026, 12, 1, 22, 30, 5, 123456, tzinfo=UTC)
    rows = [
        {"conversation_id": "c1", "sender": "bot", "text": "one", "parse": None, "data": {"a": [1, "é"]},
         "created_at": when},
        {"conversation_id": "c1", "sender": "agent", "text": "two", "parse": {"intent": "x"}, "data": None,
         "created_at": when},
    ]  # fmt: skip
    with engine.connect() as conn, driver.transaction(conn) as direct:
        ids = direct.execute(ADD, rows).scalars()
        assert not conn.in_transaction()  # nothing went through SQLAlchemy
    with engine.begin() as conn:  # the same rows through SQLAlchemy, for the file's own values
        more = list(conn.execute(ADD, rows).scalars())
        raw = conn.exec_driver_sql(
            "SELECT parse, data, created_at FROM messages WHERE id IN (?, ?, ?, ?)", (*ids, *more)
        )
        stored = raw.all()
    assert stored[0] == stored[2] and stored[1] == stored[3]  # the same SQL values either way
    with engine.connect() as conn:
        through_sqlalchemy = conn.execute(BY_SENDERS, {"cid": "c1"}).all()
        conn.commit()
        with driver.transaction(conn) as direct:
            straight = direct.execute(BY_SENDERS, {"cid": "c1"}).all()
    assert [tuple(r) for r in straight] == [tuple(r) for r in through_sqlalchemy]
    assert straight[0].created_at == when and straight[1].parse == {"intent": "x"}  # aware: UtcDateTime on both
    assert straight[0]._asdict()["sender"] == "bot"


def test_one_row_rules_and_errors_are_sqlalchemy_s(engine: sqlalchemy.Engine) -> None:
    with engine.connect() as conn, driver.transaction(conn) as direct:
        add = {"conversation_id": "c1", "sender": "bot", "text": "t", "data": None, "created_at": datetime.now(UTC)}
        direct.execute(ADD, [add, add])
        with pytest.raises(MultipleResultsFound):
            direct.execute(BY_SENDERS, {"cid": "c1"}).one_or_none()
        with pytest.raises(NoResultFound):
            direct.execute(BY_SENDERS, {"cid": "nobody"}).one()
        assert direct.execute(BY_SENDERS, {"cid": "nobody"}).one_or_none() is None
        with pytest.raises(KeyError, match="cid"):
            direct.execute(BY_SENDERS, {})
    with engine.connect() as conn:
        with pytest.raises(IntegrityError), driver.transaction(conn) as direct:  # no such conversation
            direct.execute(ADD, {**add, "conversation_id": "c9"})
        with driver.transaction(conn) as direct:  # rolled back, and the connection is fine
            assert len(direct.execute(BY_SENDERS, {"cid": "c1"}).all()) == 2


def test_what_only_sqlalchemy_runs_right_goes_through_it_in_the_same_transaction(engine: sqlalchemy.Engine) -> None:
    with engine.connect() as conn:
        with driver.transaction(conn) as direct:
            assert len(direct.execute(EXPANDING).all()) == 0  # an expanding IN
            direct.execute(WITH_DEFAULTS, {"conversation_id": "c1", "sender": "bot"})  # Python-side defaults
            assert conn.in_transaction()  # SQLAlchemy was used, and commits
        assert conn.execute(select(Message.text)).scalars().all() == [""]
        conn.commit()
        with pytest.raises(RuntimeError), driver.transaction(conn) as direct:
            store.add_message(direct, "c1", "customer", "hot")
            with orm_session(direct) as s:
                s.add(Agent(username="ana", name="A", password_hash="x"))
            raise RuntimeError("the unit of work fails after both")
        assert conn.execute(select(Message.text)).scalars().all() == [""]  # both rolled back
        assert conn.execute(select(Agent.id)).all() == []
        conn.commit()
        with driver.transaction(conn) as direct:
            store.add_message(direct, "c1", "customer", "hot")
            with orm_session(direct) as s:
                s.add(Agent(username="ana", name="A", password_hash="x"))
        assert conn.execute(select(Message.text).order_by(Message.id)).scalars().all() == ["", "hot"]
        assert len(conn.execute(select(Agent.id)).all()) == 1
