"""The chat's hot-path writes (``HotPathWriter``): the customer's message (a few statements: one transaction on
SQLite, each statement committed on its own on PostgreSQL), the bot's replies in one autocommitted statement; on
SQLite on the event loop's thread unless another process holds the lock (then through aiosqlite, waiting its turn),
on PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common import db
from common.db import HotPathWriter, WriteConnection, create_engine, session_factory
from common.settings import normalize_db_url
from handoff import store
from handoff.models import Conversation, Message
from tests.services import create_pg_database, drop_pg_database
from warmline.migrate import upgrade


async def _replies_round_trip(url: str) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    writer = HotPathWriter(engine)
    try:
        async with sessions() as s, s.begin():
            await s.run_sync(store.open_conversation, "conv-w0001", None)
            asked = await s.run_sync(store.add_message, "conv-w0001", "customer", "where is my parcel?", client_id="c1")
        said = [("First paragraph.", None), ("Second paragraph.", {"quick_replies": [{"title": "Yes"}]})]
        replies = await store.add_replies(writer, "conv-w0001", said)
        await store.set_parse(writer, asked.message.id, {"intent": {"name": "track_order", "confidence": 0.9}})
        assert [r.text for r in replies] == ["First paragraph.", "Second paragraph."]
        assert replies[0].id < replies[1].id and replies[0].id > asked.message.id
        async with sessions() as s:
            stored = (await s.execute(select(Message).order_by(Message.id))).scalars().all()
        assert [(m.id, m.sender, m.text) for m in stored] == [
            (asked.message.id, "customer", "where is my parcel?"),
            (replies[0].id, "bot", "First paragraph."),
            (replies[1].id, "bot", "Second paragraph."),
        ]
        assert stored[2].data == {"quick_replies": [{"title": "Yes"}]}
        assert stored[0].parse == {"intent": {"name": "track_order", "confidence": 0.9}}
        assert await store.add_replies(writer, "conv-w0001", []) == []
    finally:
        writer.close()
        await engine.dispose()


async def test_write_transactions_of_one_process_take_turns(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Concurrent write transactions queue in the process (no busy-wait spiral); a failed one hands the turn on."""
    async with sessions() as s, s.begin():
        await s.run_sync(store.open_conversation, "conv-w0003", None)

    async def write(i: int) -> None:
        async with sessions() as s, s.begin():
            await s.run_sync(store.add_message, "conv-w0003", "customer", f"message {i}", client_id=f"c{i}")
            await asyncio.sleep(0.005)  # holds the write lock across an await, as handlers do
            if i == 7:
                raise RuntimeError("this transaction fails and rolls back")

    results = await asyncio.wait_for(asyncio.gather(*(write(i) for i in range(30)), return_exceptions=True), 20)
    assert [i for i, r in enumerate(results) if isinstance(r, Exception)] == [7]
    async with sessions() as s:
        texts = {m.text for m in await store.history(s, "conv-w0003")}
    assert texts == {f"message {i}" for i in range(30) if i != 7}


def _customer_message(
    session_id: str, text: str, client_id: str, customer: dict[str, str] | None = None
) -> Callable[[WriteConnection], tuple[store.StoredMessage, store.ConversationState]]:
    return lambda s: store.add_customer_message(s, session_id, text, client_id, customer)


async def _customer_messages_round_trip(url: str, one_transaction: bool) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    writer = HotPathWriter(engine)
    try:
        first, chat = await writer.write(_customer_message("conv-w0004", "hi", "c1", {"name": "Ana"}))
        again, _ = await writer.write(_customer_message("conv-w0004", "hi", "c1"))
        other, later = await writer.write(_customer_message("conv-w0004", "hello?", "c2", {"email": "a@b.example"}))
        assert chat.status == "bot" and not chat.bot_paused and first.created and not again.created and other.created
        assert chat.customer == {"name": "Ana"} and later.customer == {"name": "Ana", "email": "a@b.example"}
        assert again.message.id == first.message.id and other.message.id > first.message.id

        def fails(s: WriteConnection) -> None:
            store.add_message(s, "conv-w0004", "customer", "never stored", client_id="c3")
            raise RuntimeError("the work fails after its first statement")

        with pytest.raises(RuntimeError):
            await writer.write(fails)
        # SQLite rolled the failed work back; on PostgreSQL its first statement had committed, as documented. Either
        # way the turn was handed on: the next write goes through.
        await writer.write(_customer_message("conv-w0004", "still here", "c4"))

        def rejected(s: WriteConnection) -> None:
            s.execute(text("INSERT INTO no_such_table VALUES (1)"))

        def rejected_hot(s: WriteConnection) -> None:  # one of the hot statements, on SQLite straight on the driver
            store.add_message(s, "conv-w9999", "customer", "a chat that does not exist")

        # The database refused a statement: this write fails as SQLAlchemy's error, the next one works.
        with pytest.raises(DBAPIError):
            await writer.write(rejected)
        with pytest.raises(IntegrityError):
            await writer.write(rejected_hot)
        await writer.write(_customer_message("conv-w0004", "and again", "c5"))
        kept = [] if one_transaction else ["never stored"]
        async with sessions() as s:
            assert [m.text for m in await store.history(s, "conv-w0004")] == [
                "hi", "hello?", *kept, "still here", "and again"
            ]  # fmt: skip
            conversation = await s.get(Conversation, "conv-w0004")
            assert conversation is not None and conversation.customer == {"name": "Ana", "email": "a@b.example"}
    finally:
        writer.close()
        await engine.dispose()


async def test_hot_path_writes_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    await _replies_round_trip(url)
    await _customer_messages_round_trip(url, one_transaction=True)


@pytest.mark.postgres
async def test_hot_path_writes_on_postgresql() -> None:
    url, name = await create_pg_database()
    try:
        db_url = normalize_db_url(url)
        upgrade(db_url)
        await _replies_round_trip(db_url)
        await _customer_messages_round_trip(db_url, one_transaction=False)
    finally:
        await drop_pg_database(name)


async def test_a_locked_sqlite_database_is_waited_for_not_failed(tmp_path: Path) -> None:
    db_file = tmp_path / "w.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    writer = HotPathWriter(engine)
    other = sqlite3.connect(db_file, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer (a second relay process, the KB editor) holds the lock
    try:
        asking = asyncio.create_task(writer.write(_customer_message("conv-w0005", "anyone there?", "c1")))
        await asyncio.sleep(0.3)
        # Both kinds of write wait through aiosqlite's busy timeout, off the event loop (which is not blocked).
        replying = asyncio.create_task(store.add_replies(writer, "conv-w0005", [("Hello!", None)]))
        await asyncio.sleep(0.3)
        assert not asking.done() and not replying.done()
        other.execute("COMMIT")
        stored, chat = await asyncio.wait_for(asking, 10)
        replies = await asyncio.wait_for(replying, 10)
        assert stored.created and chat.status == "bot" and replies[0].text == "Hello!"
        async with sessions() as s:
            assert [m.text for m in await store.history(s, "conv-w0005")] == ["anyone there?", "Hello!"]
    finally:
        other.close()
        writer.close()
        await engine.dispose()


async def test_a_short_lock_elsewhere_is_tried_again_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process's hot-path write holds the lock for about a millisecond. Waited for through aiosqlite, SQLite's
    # busy handler sleeps 50-100 ms between tries and loses the lock to that process's next writes (the action
    # server's KB answer rows waited 0.5-1.8 s so while the relay wrote its turns). The write tries again on the
    # loop's thread in short pauses instead, and goes through aiosqlite only when the lock stays taken.
    db_file = tmp_path / "w.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    upgrade(url)
    engine = create_engine(url)
    writer = HotPathWriter(engine)
    monkeypatch.setattr(db, "ON_LOOP_RETRIES_S", (0.01,) * 50)  # wide margins: a slow CI machine cannot flip it
    through_aiosqlite: list[object] = []
    through_driver = db._connection
    monkeypatch.setattr(db, "_connection", lambda *a, **k: through_aiosqlite.append(a) or through_driver(*a, **k))
    other = sqlite3.connect(db_file, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        asking = asyncio.create_task(writer.write(_customer_message("conv-w0006", "quick one", "c1")))
        await asyncio.sleep(0.05)
        assert not asking.done()
        other.execute("COMMIT")
        stored, chat = await asyncio.wait_for(asking, 5)
        assert stored.created and chat.status == "bot"
        assert through_aiosqlite == []  # the loop's own connection wrote it, after the other's commit
    finally:
        other.close()
        writer.close()
        await engine.dispose()


async def test_writes_that_arrive_together_commit_together_and_fail_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit on SQLite: the writes queued while the loop's connection is busy share one transaction (under
    load a write's cost was mostly its COMMIT), each in a savepoint of its own, so one that fails rolls back only
    itself and its caller alone gets the error; an atomic write has a transaction of its own, in its turn; a caller
    gone before its turn has nothing written."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    writer = HotPathWriter(engine)
    transactions: list[int] = []
    real = db.transaction

    def counted(conn: object) -> object:
        transactions.append(1)
        return real(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(db, "transaction", counted)
    try:
        await writer.write(_customer_message("conv-w0007", "first", "c0"))
        transactions.clear()

        def fails_after_writing(s: WriteConnection) -> None:
            store.add_message(s, "conv-w0007", "customer", "never stored", client_id="bad1")
            raise RuntimeError("this write fails after its first statement")

        def refused(s: WriteConnection) -> None:  # a hot statement the database refuses (no such chat)
            store.add_message(s, "conv-w9999", "customer", "a chat that does not exist")

        def seat(s: WriteConnection) -> str:
            store.add_message(s, "conv-w0007", "system", "atomic, alone")
            return "seated"

        writes = [writer.write(_customer_message("conv-w0007", f"m{i}", f"c{i + 1}")) for i in range(20)]
        writes.insert(5, writer.write(fails_after_writing))
        writes.insert(9, writer.write(refused))
        writes.insert(14, writer.write(seat, atomic=True))
        gone = asyncio.ensure_future(writer.write(_customer_message("conv-w0007", "gone", "gone1")))
        everyone = asyncio.gather(*writes, return_exceptions=True)
        await asyncio.sleep(0)  # every write is queued now, none run yet
        gone.cancel()
        results = await everyone
        assert gone.cancelled()
        assert isinstance(results[5], RuntimeError) and isinstance(results[9], IntegrityError)
        assert results[14] == "seated"
        stored = [r for r in results if isinstance(r, tuple)]
        assert len(stored) == 20 and all(m.created for m, _ in stored)
        assert len(transactions) <= 4  # 23 writes: the group before the atomic one, it, the group after
        async with sessions() as s:
            texts = [m.text for m in await store.history(s, "conv-w0007")]
        assert texts == ["first", *[f"m{i}" for i in range(12)], "atomic, alone", *[f"m{i}" for i in range(12, 20)]]
        # The failures left the connection fit for the next write, alone.
        again, _ = await writer.write(_customer_message("conv-w0007", "after", "c99"))
        assert again.created
    finally:
        writer.close()
        await engine.dispose()


def _size(path: str) -> int:
    return os.stat(path).st_size


async def test_the_wal_is_checkpointed_and_started_over_under_steady_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path never checkpoints on the loop (a checkpoint fsyncs) and, while only it writes, nobody else did:
    the WAL grew by about 14 KB a message. A thread of the writer's own checkpoints it, and starts it over when it
    is long, so under steady writes its file stays bounded. A reader that holds an old snapshot keeps the WAL from
    starting over: the writes still all go through, and once that reader is done the WAL starts over again."""
    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 40)
    monkeypatch.setattr(db, "RESTART_AT_FRAMES", 200)  # pages: 800 KB
    path = tmp_path / "w.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    engine = create_engine(url)
    writer = HotPathWriter(engine)
    wal = f"{path}-wal"

    async def steady(tag: str, count: int) -> None:
        for start in range(0, count, 10):  # ten chats writing at once, as under load
            await asyncio.gather(
                *(
                    writer.write(_customer_message(f"conv-{i % 10}", f"m{i}", f"{tag}{i}"))
                    for i in range(start, start + 10)
                )
            )
            await asyncio.sleep(0.001)  # the traffic's gaps, where the loop lets the checkpoint's thread run

    try:
        await steady("a", 6000)  # unchecked: about 50 MB of WAL
        size = _size(wal)
        assert size < 8 * 1024 * 1024, f"the WAL grew to {size} bytes"

        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchone()  # a snapshot the WAL must keep
        try:
            await steady("b", 1500)
        finally:
            reader.execute("COMMIT")
            reader.close()
        await steady("c", 3000)
        check = sqlite3.connect(path)
        try:
            _, frames, _ = check.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            assert frames < 2048, f"the WAL did not start over: {frames} pages"  # without: about 6,000 more
            assert check.execute("SELECT count(*) FROM messages").fetchone() == (10500,)
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            check.close()
    finally:
        writer.close()
        await engine.dispose()
