"""Storage and the ticket lifecycle against a real SQLite file (and PostgreSQL, see test_postgres.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoff import store, tickets
from handoff.auth import BadCredentials, agent_for_token, create_agent, login
from handoff.bot_replies import history_message
from handoff.models import Conversation, Message


async def test_message_with_the_same_client_id_is_stored_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await s.run_sync(store.open_conversation, "conv-00001", {"name": "Ana"})
        first = await s.run_sync(store.add_message, "conv-00001", "customer", "hello", client_id="c1")
        again = await s.run_sync(store.add_message, "conv-00001", "customer", "hello", client_id="c1")
        other = await s.run_sync(store.add_message, "conv-00001", "customer", "hello", client_id="c2")
    assert first.created and not again.created and other.created
    assert again.message.id == first.message.id
    async with sessions() as s:
        assert [m.client_id for m in await store.history(s, "conv-00001")] == ["c1", "c2"]


async def test_timestamps_come_back_in_utc_with_their_offset(sessions: async_sessionmaker[AsyncSession]) -> None:
    """SQLite keeps no offset: without UtcDateTime a stored message's ``ts`` read back naive, which a browser takes
    for its own local time; a time given in another zone is stored as the same instant."""
    noon_in_paris = datetime(2026, 12, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    async with sessions() as s, s.begin():
        await s.run_sync(store.open_conversation, "conv-00003", None)
        said = await s.run_sync(store.add_message, "conv-00003", "customer", "hello", client_id="t1")
        s.add(Message(conversation_id="conv-00003", sender="system", text="then", created_at=noon_in_paris))
    async with sessions() as s:
        rows = (await s.execute(select(Message).where(Message.conversation_id == "conv-00003"))).scalars().all()
        again = await s.run_sync(store.add_message, "conv-00003", "customer", "hello", client_id="t1")
    assert [m.created_at.tzinfo for m in rows] == [UTC, UTC]
    assert rows[1].created_at == noon_in_paris and rows[1].created_at.hour == 11
    assert history_message(again.message).ts == history_message(said.message).ts  # the resend's ack: same ts
    assert history_message(rows[0]).ts.endswith("+00:00")


async def test_customer_details_are_merged_not_overwritten(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await s.run_sync(store.open_conversation, "conv-00002", {"name": "Ana", "page": "/help"})
        await s.run_sync(store.open_conversation, "conv-00002", {"email": "ana@example.com", "name": ""})
    async with sessions() as s:
        conversation = await s.get(Conversation, "conv-00002")
        assert conversation is not None
        assert conversation.customer == {"name": "Ana", "page": "/help", "email": "ana@example.com"}


async def test_ticket_lifecycle_one_ticket_one_agent(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        for conv in ("conv-a0001", "conv-b0001"):
            await s.run_sync(store.open_conversation, conv, None)
        ada = await create_agent(s, "ada", "Ada", "correct horse")
        bob = await create_agent(s, "bob", "Bob", "battery staple")
        first, created = await tickets.open_ticket(s, "conv-a0001", {"reason": "customer_asked"})
        again, created_again = await tickets.open_ticket(s, "conv-a0001", {"reason": "customer_asked"})
        second, _ = await tickets.open_ticket(s, "conv-b0001", {"reason": "low_confidence"})
        assert created and not created_again and again.id == first.id
        assert await tickets.queue_position(s, first) == 1 and await tickets.queue_position(s, second) == 2
    async with sessions() as s, s.begin():
        assert await tickets.accept(s, first.id, ada.id) is not None
        assert await tickets.accept(s, first.id, bob.id) is None  # a second accept is refused
        assert await tickets.queue_position(s, second) == 1
        assert (await s.get(Conversation, "conv-a0001")).status == "agent"  # type: ignore[union-attr]
        assert await tickets.resolve(s, first.id, bob.id) is None  # only the seated agent resolves
        assert await tickets.resolve(s, first.id, ada.id) is not None
        assert (await s.get(Conversation, "conv-a0001")).status == "bot"  # type: ignore[union-attr]
        assert not await tickets.rate(s, first.id, "conv-b0001", 5, None)  # not their conversation
        assert await tickets.rate(s, first.id, "conv-a0001", 4, "quick, thanks")
        reopened, created = await tickets.open_ticket(s, "conv-a0001", {"reason": "customer_asked"})
        assert created and reopened.id != first.id  # a later escalation is a new ticket


async def test_login_and_tokens(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await create_agent(s, "ada", "Ada", "correct horse")
        with pytest.raises(ValueError):
            await create_agent(s, "short", "Short", "pw")
    async with sessions() as s, s.begin():
        agent, token = await login(s, "ada", "correct horse")
        with pytest.raises(BadCredentials):
            await login(s, "ada", "wrong password")
        with pytest.raises(BadCredentials):
            await login(s, "nobody", "correct horse")
    async with sessions() as s:
        assert (await agent_for_token(s, token)).id == agent.id  # type: ignore[union-attr]
        assert await agent_for_token(s, "not-a-token") is None
        stored = (await s.execute(__import__("sqlalchemy").text("select password_hash from agents"))).scalar_one()
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
