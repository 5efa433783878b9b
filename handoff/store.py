"""Reading and writing conversations and messages; the caller commits.

Opening a conversation and adding a message are plain functions of SQLAlchemy Core statements over a sync
``Connection`` or ``Session`` (``common.db.Executor``): the chat's messages run them in the hot-path writer
(``HotPathWriter.write``, a Connection), every other caller through ``AsyncSession.run_sync``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, TextClause, TextualSelect, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from common.clock import utcnow
from common.db import Executor, HotPathWriter, WriteConnection
from common.driver import hot
from handoff import identity, telemetry
from handoff.models import Conversation, Message, MessageRow

# Writes on the chat path use the tables (SQLAlchemy Core): the ORM's loads and bulk-insert machinery cost a few
# tenths of a millisecond per statement, taken from Rasa while it reads the message, and these return ids.
MESSAGES: Table = Message.__table__  # type: ignore[assignment]
CONVERSATIONS: Table = Conversation.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StoredMessage:
    message: MessageRow
    created: bool  # False when a resend with the same client_id found the earlier copy


@dataclass(frozen=True)
class ConversationState:
    """What a customer message needs to know of its conversation (the ORM object is not loaded for it)."""

    status: str
    bot_paused: bool
    customer: dict[str, Any]
    agent_read_id: int | None


def _insert_new(table: Table, conflict: tuple[str, ...], returning: str | None = None) -> TextClause | TextualSelect:
    """INSERT ... ON CONFLICT (...) DO NOTHING [RETURNING ...] of every column but ``returning``, all given.

    Written as text because SQLAlchemy compiles the dialects' own ON CONFLICT constructs anew on every call (they
    are not cached: 0.2 ms each here) and this runs for every chat message. SQLite and PostgreSQL share the syntax.
    """
    columns = [c for c in table.c if c.name != returning]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(c.name for c in columns)}) "
        f"VALUES ({', '.join(':' + c.name for c in columns)}) ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    )
    statement = text(sql + (f" RETURNING {returning}" if returning else ""))
    statement = statement.bindparams(*(bindparam(c.name, type_=c.type) for c in columns))
    return statement.columns(table.c[returning]) if returning else statement


# The chat's hot statements (common/driver.py: on SQLite they run straight on the driver).
_STATE = hot(
    select(
        CONVERSATIONS.c.status, CONVERSATIONS.c.bot_paused, CONVERSATIONS.c.customer, CONVERSATIONS.c.agent_read_id
    ).where(CONVERSATIONS.c.id == bindparam("id"))
)
_CREATE = hot(_insert_new(CONVERSATIONS, ("id",)))
_MERGE = hot(
    update(CONVERSATIONS)
    .where(CONVERSATIONS.c.id == bindparam("conversation_id"))
    .values(customer=bindparam("merged", type_=CONVERSATIONS.c.customer.type), updated_at=bindparam("now"))
)
_ADD_ONCE = hot(_insert_new(MESSAGES, ("conversation_id", "client_id"), returning="id"))
_BY_CLIENT_ID = hot(
    select(MESSAGES).where(
        MESSAGES.c.conversation_id == bindparam("conversation_id"), MESSAGES.c.client_id == bindparam("client_id")
    )
)


def open_conversation(s: Executor, session_id: str, customer: dict[str, Any] | None) -> ConversationState:
    """Get the conversation, creating it on first contact; merges newly known customer details into it (a detail
    sent empty never erases a known one, a claim never overwrites a verified record: ``identity.merge``)."""
    known = identity.merge({}, customer)
    row = s.execute(_STATE, {"id": session_id}).one_or_none()
    if row is None:
        now = utcnow()
        s.execute(_CREATE, {
            "id": session_id, "status": "bot", "customer": known, "bot_paused": False, "customer_read_id": None,
            "agent_read_id": None, "created_at": now, "updated_at": now,
        })  # fmt: skip
        row = s.execute(_STATE, {"id": session_id}).one()  # ours, or another relay process's of a moment ago
    merged = identity.merge(row.customer, customer)
    if merged != row.customer:
        s.execute(_MERGE, {"conversation_id": session_id, "merged": merged, "now": utcnow()})
    return ConversationState(row.status, row.bot_paused, merged, row.agent_read_id)


def add_message(
    s: Executor,
    conversation_id: str,
    sender: str,
    text: str,
    *,
    client_id: str | None = None,
    parse: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> StoredMessage:
    """Store a message once: a message whose client_id was already stored returns the stored one.

    One INSERT ... ON CONFLICT DO NOTHING RETURNING: every chat message passes here, so it costs one round trip
    (a check-then-insert would cost two and still race between relay processes).
    """
    values: dict[str, Any] = {
        "conversation_id": conversation_id, "sender": sender, "text": text, "client_id": client_id,
        "parse": parse, "data": data, "created_at": utcnow(),
    }  # fmt: skip
    new_id = s.execute(_ADD_ONCE, values).scalar_one_or_none()
    if new_id is None:
        assert client_id is not None  # only a repeated client_id can conflict
        existing = s.execute(_BY_CLIENT_ID, {"conversation_id": conversation_id, "client_id": client_id}).one()
        return StoredMessage(MessageRow(**existing._asdict()), created=False)
    telemetry.message(sender)
    return StoredMessage(MessageRow(id=new_id, **values), created=True)


def add_customer_message(
    s: Executor, session_id: str, text: str, client_id: str | None, customer: dict[str, Any] | None
) -> tuple[StoredMessage, ConversationState]:
    """A customer's message, stored once, with the conversation as the relay must know it to route the message
    (its phase, whether Rasa is paused) and to tell the agent's copilot (the customer's record). Each statement is
    fine on its own (see ``HotPathWriter.write``)."""
    conversation = open_conversation(s, session_id, customer)
    stored = add_message(s, session_id, "customer", text, client_id=client_id)
    return stored, conversation


REPLY_INSERT = hot(insert(MESSAGES).returning(MESSAGES.c.id))


async def add_replies(
    writer: HotPathWriter,
    conversation_id: str,
    replies: Sequence[tuple[str, dict[str, Any] | None]],
    reading: tuple[int, dict[str, Any] | None] | None = None,
) -> list[MessageRow]:
    """Store the bot's replies to one message, in order, committed before the call returns, and with them the bot's
    ``reading`` (message id, parse) of that message: one write for the turn's second half (on PostgreSQL the rows go
    in one INSERT ... VALUES (...), (...) RETURNING, atomic on its own; on SQLite the write is one transaction; the
    reading is one UPDATE)."""
    now = utcnow()
    rows = [
        {"conversation_id": conversation_id, "sender": "bot", "text": text, "data": data, "created_at": now}
        for text, data in replies
    ]
    if not rows and reading is None:
        return []

    def work(s: WriteConnection) -> list[int]:
        new_ids = list(s.execute(REPLY_INSERT, rows).scalars()) if rows else []
        if reading is not None:
            s.execute(_SET_PARSE, {"message_id": reading[0], "new_parse": reading[1]})
        return new_ids

    # Ids are handed out in row order, so the sorted ids pair with the rows.
    new_ids = sorted(await writer.write(work))
    for _ in rows:
        telemetry.message("bot")
    return [
        MessageRow(new_id, conversation_id, "bot", text, None, None, data, now)
        for new_id, (text, data) in zip(new_ids, replies, strict=True)
    ]


_SET_PARSE = hot(
    update(MESSAGES)
    .where(MESSAGES.c.id == bindparam("message_id"))
    .values(parse=bindparam("new_parse", type_=MESSAGES.c.parse.type))
)


async def set_parse(writer: HotPathWriter, message_id: int, parse: dict[str, Any] | None) -> None:
    await writer.execute(_SET_PARSE, [{"message_id": message_id, "new_parse": parse}])


def history_in(s: Session, conversation_id: str, limit: int = 500) -> Sequence[Message]:
    """The last ``limit`` messages of a conversation, oldest first."""
    result = s.execute(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id.desc()).limit(limit)
    )
    return list(reversed(result.scalars().all()))


async def history(s: AsyncSession, conversation_id: str, limit: int = 500) -> Sequence[Message]:
    return await s.run_sync(history_in, conversation_id, limit)


async def last_message_ids(s: AsyncSession, conversation_ids: Sequence[str]) -> dict[str, int]:
    """Each conversation's newest message id as this transaction sees it (0 for none): one indexed query."""
    if not conversation_ids:
        return {}
    rows = await s.execute(
        select(Message.conversation_id, func.max(Message.id))
        .where(Message.conversation_id.in_(conversation_ids))
        .group_by(Message.conversation_id)
    )
    found = {conversation_id: last for conversation_id, last in rows.tuples()}
    return {conversation_id: found.get(conversation_id) or 0 for conversation_id in conversation_ids}
