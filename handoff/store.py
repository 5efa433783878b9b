"""Reading and writing conversations and messages. Plain async functions over a session; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.models import Conversation, Message, utcnow


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
    insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["conversation_id", "client_id"])
        .returning(Message.id)
    )
    new_id = (await s.execute(statement)).scalar_one_or_none()
    if new_id is None:
        assert client_id is not None  # only a repeated client_id can conflict
        existing = await by_client_id(s, conversation_id, client_id)
        assert existing is not None
        return StoredMessage(existing, created=False)
    return StoredMessage(Message(id=new_id, **values), created=True)


async def by_client_id(s: AsyncSession, conversation_id: str, client_id: str) -> Message | None:
    result = await s.execute(
        select(Message).where(Message.conversation_id == conversation_id, Message.client_id == client_id)
    )
    return result.scalar_one_or_none()


async def set_parse(s: AsyncSession, message_id: int, parse: dict[str, Any] | None) -> None:
    await s.execute(update(Message).where(Message.id == message_id).values(parse=parse))


async def history(s: AsyncSession, conversation_id: str, limit: int = 500) -> Sequence[Message]:
    """The last ``limit`` messages of a conversation, oldest first."""
    result = await s.execute(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id.desc()).limit(limit)
    )
    return list(reversed(result.scalars().all()))
