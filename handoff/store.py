"""Reading and writing conversations and messages. Plain async functions over a session; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.models import Conversation, Message, utcnow
from warmline.db import AutocommitWriter

# Writes on the chat path use the table (SQLAlchemy Core): the ORM's bulk-insert machinery costs a few tenths of
# a millisecond per statement, and these statements return ids, not objects.
MESSAGES: Table = Message.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StoredMessage:
    message: Message
    created: bool  # False when a resend with the same client_id found the earlier copy


async def open_conversation(s: AsyncSession, session_id: str, customer: dict[str, Any] | None) -> Conversation:
    """Get the conversation, creating it on first contact; merges newly known customer details into it."""
    conversation = await s.get(Conversation, session_id)
    if conversation is None:
        conversation = Conversation(id=session_id, status="bot", customer=dict(customer or {}))
        s.add(conversation)
        try:
            async with s.begin_nested():
                await s.flush()
        except IntegrityError:  # another relay process created it a moment ago
            conversation = await s.get(Conversation, session_id, populate_existing=True)
            assert conversation is not None
    elif customer:
        merged = {**conversation.customer, **{k: v for k, v in customer.items() if v}}
        if merged != conversation.customer:
            conversation.customer = merged
            conversation.updated_at = utcnow()
    return conversation


async def add_message(
    s: AsyncSession,
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
    values = {
        "conversation_id": conversation_id, "sender": sender, "text": text, "client_id": client_id,
        "parse": parse, "data": data, "created_at": utcnow(),
    }  # fmt: skip
    upsert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    statement = (
        upsert(MESSAGES)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["conversation_id", "client_id"])
        .returning(MESSAGES.c.id)
    )
    new_id = (await s.execute(statement)).scalar_one_or_none()
    if new_id is None:
        assert client_id is not None  # only a repeated client_id can conflict
        existing = await by_client_id(s, conversation_id, client_id)
        assert existing is not None
        return StoredMessage(existing, created=False)
    return StoredMessage(Message(id=new_id, **values), created=True)


REPLY_INSERT = insert(MESSAGES).returning(MESSAGES.c.id)


async def add_replies(
    writer: AutocommitWriter, conversation_id: str, replies: Sequence[tuple[str, dict[str, Any] | None]]
) -> list[Message]:
    """Store the bot's replies to one message, in order, committed before the call returns: one statement (the
    rows go in one INSERT ... VALUES (...), (...) RETURNING), atomic on its own, so no transaction around it."""
    now = utcnow()
    rows = [
        {"conversation_id": conversation_id, "sender": "bot", "text": text, "data": data, "created_at": now}
        for text, data in replies
    ]
    if not rows:
        return []
    # Ids are handed out in row order, so the sorted ids pair with the rows.
    new_ids = sorted(await writer.execute(REPLY_INSERT, rows))
    return [Message(id=new_id, **row) for new_id, row in zip(new_ids, rows, strict=True)]


async def by_client_id(s: AsyncSession, conversation_id: str, client_id: str) -> Message | None:
    result = await s.execute(
        select(Message).where(Message.conversation_id == conversation_id, Message.client_id == client_id)
    )
    return result.scalar_one_or_none()


async def set_parse(writer: AutocommitWriter, message_id: int, parse: dict[str, Any] | None) -> None:
    await writer.execute(update(MESSAGES).where(MESSAGES.c.id == message_id).values(parse=parse))


async def history(s: AsyncSession, conversation_id: str, limit: int = 500) -> Sequence[Message]:
    """The last ``limit`` messages of a conversation, oldest first."""
    result = await s.execute(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id.desc()).limit(limit)
    )
    return list(reversed(result.scalars().all()))
