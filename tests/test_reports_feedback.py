"""Ratings and answer feedback in the database, and the reports' loaders, on SQLite and PostgreSQL.

The loader test stores the scripted conversations of tests/test_reports_metrics.py as real rows (conversations,
messages, tickets with their cards, segments, KB answers, ratings) and checks that ``handoff.reports`` reads back
exactly the figures worked out by hand there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.feedback import KB_ANSWERS, feedback_buttons
from common.db import create_engine, session_factory
from common.errors import InvalidRating
from handoff import feedback, reports, tickets
from handoff import metrics_calc as mc
from handoff.auth import create_agent
from handoff.models import ChatRating, Conversation, KbAnswer, Message, Ticket, TicketSegment
from tests.services import create_pg_database, drop_pg_database
from tests.test_reports_metrics import D1, D2, scripted
from warmline.migrate import upgrade


async def store_scripted(s: AsyncSession) -> None:
    rows = scripted()
    ann = await create_agent(s, "ann", "Ann", "password-ann-1", "agent")
    bob = await create_agent(s, "bob", "Bob", "password-bob-1", "agent")
    ids = {mc_id: agent.id for mc_id, agent in ((1, ann), (2, bob))}
    for c in rows.conversations:
        s.add(Conversation(id=c.id, status="bot", customer={}, created_at=c.created_at, updated_at=c.created_at))
        if c.engaged:
            s.add(Message(conversation_id=c.id, sender="customer", text="hello", created_at=c.created_at))
    await s.flush()
    for t in rows.tickets:
        status = "resolved" if t.resolved_at else "assigned" if t.accepted_at else "queued"
        s.add(
            Ticket(
                id=t.id, conversation_id=t.conversation_id, status=status, reason=t.reason,
                card={"reason": t.reason, "article_id": t.article_id, "transcript": [{"text": "long card"}]},
                created_at=t.created_at, accepted_at=t.accepted_at, resolved_at=t.resolved_at, rating=t.rating,
                team=t.team,
            )
        )  # fmt: skip
        if t.first_agent_reply_at is not None:
            # An agent message before the agent joined (a note from an earlier ticket) must not count.
            s.add(Message(conversation_id=t.conversation_id, sender="agent", text="earlier", created_at=t.created_at))
            s.add(
                Message(conversation_id=t.conversation_id, sender="agent", text="hi", created_at=t.first_agent_reply_at)
            )
    await s.flush()
    for g in rows.segments:
        s.add(
            TicketSegment(
                ticket_id=g.ticket_id, agent_id=ids[g.agent_id], team=g.team, started_at=g.started_at,
                ended_at=g.ended_at, ended_by="resolve" if g.ended_at else None,
            )
        )  # fmt: skip
    for i, a in enumerate(rows.answers):
        s.add(
            KbAnswer(
                id=f"a{i}", conversation_id=a.conversation_id, article_id=a.article_id, team=a.team, helpful=a.helpful,
                created_at=a.created_at,
            )
        )  # fmt: skip
    for r in rows.chat_ratings:
        s.add(ChatRating(conversation_id=r.conversation_id, asked_because="ended", score=r.score, asked_at=D1))
    # Outside the range: must not count.
    s.add(Conversation(id="old", status="bot", customer={}, created_at=D1 - timedelta(days=40)))
    await s.flush()
    s.add(Message(conversation_id="old", sender="customer", text="hi", created_at=D1 - timedelta(days=40)))


def agent_ids_dropped(r: mc.Report) -> mc.Report:
    """The scripted rows number agents 1 and 2; the database numbers them as it likes."""
    return r.model_copy(update={"agents": [a.model_copy(update={"agent_id": 0}) for a in r.agents]})


async def check_loaders(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await store_scripted(s)
    period = reports.Period(start=D1 - timedelta(days=1), end=D2 + timedelta(days=1))
    async with sessions() as s:
        loaded = await reports.build(s, period, 10, 20)
    assert agent_ids_dropped(loaded) == agent_ids_dropped(mc.report(scripted(), 10, 20))
    # The team filter: billing's tickets and segments, its articles' answers; conversations stay site-wide.
    async with sessions() as s:
        billing = await reports.build(s, period.model_copy(update={"team": "billing"}), 10, 20)
    assert billing.overview.conversations == 7 and billing.overview.escalations == 2
    assert [a.article_id for a in billing.articles] == ["billing-dispute"]
    assert [a.agent for a in billing.agents] == ["Ann", "Bob"]
    assert billing.handoff.transfer.after_transfer.mean_s == 250


async def test_loaders_read_back_the_scripted_figures_on_sqlite(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await check_loaders(sessions)


@pytest.fixture
async def pg_sessions() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url, name = await create_pg_database()
    try:
        upgrade(url.replace("postgresql://", "postgresql+asyncpg://"))
        engine = create_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
        yield session_factory(engine)
        await engine.dispose()
    finally:
        await drop_pg_database(name)


@pytest.mark.postgres
async def test_loaders_read_back_the_scripted_figures_on_postgres(
    pg_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await check_loaders(pg_sessions)


async def conversation(s: AsyncSession, cid: str, wrote: bool = True) -> None:
    s.add(Conversation(id=cid, status="bot", customer={}))
    await s.flush()
    if wrote:
        s.add(Message(conversation_id=cid, sender="customer", text="hello"))
        await s.flush()


async def test_a_second_ticket_rating_is_refused_and_the_first_stands(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        await conversation(s, "rated-twice")
        ticket, _ = await tickets.open_ticket(s, "rated-twice", {"reason": "customer_asked"})
        agent = await create_agent(s, "ann2", "Ann", "password-ann-1", "agent")
        await tickets.accept(s, ticket.id, agent.id)
        await tickets.resolve(s, ticket.id, agent.id)
    async with sessions() as s, s.begin():
        assert await tickets.rate(s, ticket.id, "rated-twice", 2, "slow")
        assert not await tickets.rate(s, ticket.id, "rated-twice", 5, "changed my mind")
    async with sessions() as s:
        stored = await s.get(Ticket, ticket.id)
        assert stored is not None and (stored.rating, stored.rating_comment) == (2, "slow")


async def test_a_bot_only_chat_is_asked_once_and_rated_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await conversation(s, "bot-only")
        assert await feedback.ask(s, "bot-only", "ended")
        assert not await feedback.ask(s, "bot-only", "idle")  # asked already: no second request
    async with sessions() as s, s.begin():
        await feedback.rate_chat(s, "bot-only", 4, "quick")
    with pytest.raises(feedback.AlreadyRated):
        async with sessions() as s, s.begin():
            await feedback.rate_chat(s, "bot-only", 1, None)
    async with sessions() as s:
        row = await s.get(ChatRating, "bot-only")
        assert row is not None and (row.score, row.comment, row.asked_because) == (4, "quick", "ended")


async def test_rating_unasked_counts_once_too(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await conversation(s, "unasked")
        await feedback.rate_chat(s, "unasked", 5, None)
    with pytest.raises(feedback.AlreadyRated):
        async with sessions() as s, s.begin():
            await feedback.rate_chat(s, "unasked", 3, None)


async def test_chats_with_a_ticket_or_no_message_are_not_rated_as_bot_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        await conversation(s, "escalated")
        await tickets.open_ticket(s, "escalated", {"reason": "customer_asked"})
        await conversation(s, "silent", wrote=False)
    async with sessions() as s, s.begin():
        assert not await feedback.ask(s, "escalated", "ended")
        assert not await feedback.ask(s, "silent", "ended")
    for cid in ("escalated", "silent"):
        with pytest.raises(InvalidRating):
            async with sessions() as s, s.begin():
                await feedback.rate_chat(s, cid, 5, None)


async def test_idle_chats_are_the_quiet_bot_only_ones_never_asked(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = D2
    async with sessions() as s, s.begin():
        for cid, last in (("quiet", now - timedelta(minutes=10)), ("busy", now - timedelta(seconds=30))):
            s.add(Conversation(id=cid, status="bot", customer={}))
            await s.flush()
            s.add(Message(conversation_id=cid, sender="customer", text="q", created_at=last))
        s.add(Conversation(id="asked", status="bot", customer={}))
        await s.flush()
        s.add(Message(conversation_id="asked", sender="customer", text="q", created_at=now - timedelta(hours=1)))
        s.add(ChatRating(conversation_id="asked", asked_because="ended"))
    async with sessions() as s:
        idle = await feedback.idle_conversations(s, ["quiet", "busy", "asked", "unknown"], now - timedelta(minutes=5))
    assert idle == ["quiet"]


def test_the_action_servers_view_of_kb_answers_matches_the_model() -> None:
    model_columns = {c.name: type(c.type) for c in sa_inspect(KbAnswer).columns}
    assert {c.name: type(c.type) for c in KB_ANSWERS.columns} == model_columns


def test_feedback_buttons_name_their_answer() -> None:
    yes, no = feedback_buttons("abc123")
    assert yes["payload"] == '/feedback_yes{"kb_answer":"abc123"}'
    assert no["payload"] == '/feedback_no{"kb_answer":"abc123"}'
