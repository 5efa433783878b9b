"""Ratings and answer feedback in the database, and the reports' loaders, on SQLite and PostgreSQL.

The loader test stores the scripted conversations of tests/test_reports_metrics.py as real rows (conversations,
messages, tickets with their cards, segments, KB answers, ratings) and checks that ``handoff.reports`` reads back
exactly the figures worked out by hand there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

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


def at(day: datetime, seconds: float) -> datetime:
    return day + timedelta(seconds=seconds)


# The conversations of tests/test_reports_metrics.py as stored rows: id -> (started, wrote).
CONVERSATIONS = {
    "c1": (at(D1, 0), True), "c2": (at(D1, 60), True), "c3": (at(D1, 120), True), "c4": (at(D1, 180), False),
    "c5": (at(D2, 0), True), "c6": (at(D2, 600), True), "c7": (at(D2, 1200), True), "c8": (at(D2, 1800), True),
}  # fmt: skip
ANSWERS = [  # conversation, article, its team, helpful, when
    ("c1", "billing-dispute", "billing", True, at(D1, 5)),
    ("c2", "router-reset", "support", False, at(D1, 65)),
    ("c3", "billing-dispute", "billing", None, at(D1, 125)),
    ("c5", "router-reset", "support", None, at(D2, 60)),
]
T1, T2, T3, T4 = at(D2, 120), at(D2, 700), at(D2, 1300), at(D2, 1900)
TICKETS = [  # id, conversation, escalated, reason, article, team, seated, first reply, resolved, rating
    (1, "c5", T1, "customer_asked", None, "support", at(T1, 30), at(T1, 40), at(T1, 330), 4),
    (2, "c6", T2, "always_human", "refund", "billing", at(T2, 90), at(T2, 110), at(T2, 440), 3),
    (3, "c7", T3, "low_confidence", None, "billing", at(T3, 60), None, None, None),
    (4, "c8", T4, "customer_asked", None, "support", None, None, None, None),
]
SEGMENTS = [  # ticket, agent, team, started, ended
    (1, "ann", "support", at(T1, 30), at(T1, 330)),
    (2, "ann", "billing", at(T2, 90), at(T2, 190)),
    (2, "bob", "billing", at(T2, 190), at(T2, 440)),
    (3, "bob", "billing", at(T3, 60), None),
]
CHAT_RATINGS = [("c1", 5), ("c2", 2), ("c6", 1)]  # c6 escalated: its chat rating is not a bot-only one


async def store_scripted(s: AsyncSession) -> None:
    agents = {
        "ann": await create_agent(s, "ann", "Ann", "password-ann-1", "agent"),
        "bob": await create_agent(s, "bob", "Bob", "password-bob-1", "agent"),
    }
    for cid, (started, wrote) in CONVERSATIONS.items():
        s.add(Conversation(id=cid, status="bot", customer={}, created_at=started, updated_at=started))
        await s.flush()
        if wrote:
            s.add(Message(conversation_id=cid, sender="customer", text="hello", created_at=started))
    for i, (cid, article, team, helpful, when) in enumerate(ANSWERS):
        s.add(
            KbAnswer(id=f"a{i}", conversation_id=cid, article_id=article, team=team, helpful=helpful, created_at=when)
        )
    for tid, cid, escalated, reason, card_article, team, seated, reply, resolved, rating in TICKETS:
        status = "resolved" if resolved else "assigned" if seated else "queued"
        card = {"reason": reason, "article_id": card_article, "transcript": [{"sender": "customer", "text": "hello"}]}
        s.add(
            Ticket(
                id=tid, conversation_id=cid, status=status, reason=reason, card=card, created_at=escalated,
                accepted_at=seated, resolved_at=resolved, rating=rating, team=team,
            )
        )  # fmt: skip
        # An agent message from before the agent joined (an earlier note) must not count as the first reply.
        s.add(Message(conversation_id=cid, sender="agent", text="earlier", created_at=escalated))
        if reply is not None:
            s.add(Message(conversation_id=cid, sender="agent", text="hi", created_at=reply))
    await s.flush()
    for tid, agent, team, started, ended in SEGMENTS:
        s.add(
            TicketSegment(
                ticket_id=tid, agent_id=agents[agent].id, team=team, started_at=started, ended_at=ended,
                ended_by="transfer" if ended else None,
            )
        )  # fmt: skip
    for cid, score in CHAT_RATINGS:
        s.add(ChatRating(conversation_id=cid, asked_because="ended", asked_at=D1, score=score))
    # Outside the range: must not count.
    s.add(Conversation(id="old", status="bot", customer={}, created_at=D1 - timedelta(days=40)))
    await s.flush()
    s.add(Message(conversation_id="old", sender="customer", text="hi", created_at=D1 - timedelta(days=40)))


def agent_ids_dropped(r: mc.Report) -> mc.Report:
    """The scripted rows number agents 1 and 2; the database numbers them as it likes."""
    return r.model_copy(update={"agents": [a.model_copy(update={"agent_id": 0}) for a in r.agents]})


async def check_loaders(sessions: async_sessionmaker[AsyncSession]) -> None:
    reports.forget_kept_days()
    async with sessions() as s, s.begin():
        await store_scripted(s)
    period = reports.Period(start=D1 - timedelta(days=1), end=D2 + timedelta(days=1))
    loaded = await reports.build(sessions, period, 10, 20)
    assert agent_ids_dropped(loaded) == agent_ids_dropped(mc.report(scripted(), 10, 20))
    # The team filter: billing's tickets and segments, its articles' answers; conversations stay site-wide.
    billing = await reports.build(sessions, period.model_copy(update={"team": "billing"}), 10, 20)
    assert billing.overview.conversations == 7 and billing.overview.escalations == 2
    assert [a.article_id for a in billing.articles] == ["billing-dispute"]
    assert [a.agent for a in billing.agents] == ["Ann", "Bob"]
    assert billing.handoff.transfer.after_transfer.mean_s == 250


async def test_finished_days_are_kept_until_forgotten(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Days settled for two days come from what the process kept: a late change shows once they are read again
    (after reports.KEEP_S, or forget_kept_days); today's rows are always read."""
    async with sessions() as s, s.begin():
        await store_scripted(s)
    period = reports.Period(start=D1 - timedelta(days=1), end=D2 + timedelta(days=1))
    first = await reports.build(sessions, period, 10, 20)
    async with sessions() as s, s.begin():
        s.add(ChatRating(conversation_id="c3", asked_because="idle", asked_at=D1, score=4))  # a late rating
    kept = await reports.build(sessions, period, 10, 20)
    assert kept.csat.bot_only.ratings == first.csat.bot_only.ratings == 2
    reports.forget_kept_days()
    assert (await reports.build(sessions, period, 10, 20)).csat.bot_only.ratings == 3
    # The same range seen as recent (nothing settled yet) is read whole, every time.
    async with sessions() as s, s.begin():
        s.add(Conversation(id="late", status="bot", customer={}, created_at=at(D1, 600)))
        await s.flush()
        s.add(Message(conversation_id="late", sender="customer", text="hi", created_at=at(D1, 600)))
    recent = await reports.rows_for(sessions, period, now=D2)
    assert sum(g.conversations for g in recent.conversations if g.engaged) == 8


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
