"""Teams, presence, transfers and handle-time segments against a real SQLite file (handoff/teams.py, tickets.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import create_engine, session_factory
from handoff import queues, store, teams, tickets
from handoff.auth import create_agent
from handoff.bootstrap import ensure_demo_admin
from handoff.console import customer_record
from handoff.models import Agent, Conversation
from warmline.migrate import upgrade


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'console.db'}"
    upgrade(url)
    engine = create_engine(url)
    yield url, session_factory(engine)
    await engine.dispose()


async def test_the_default_team_exists_and_routes_unknown_teams(
    db: tuple[str, async_sessionmaker[AsyncSession]],
) -> None:
    _, sessions = db
    async with sessions() as s, s.begin():
        assert (await teams.default_team(s)).name == "support"
        await teams.save_team(s, "billing", "Billing", {"tz": "UTC", "start": "00:00", "end": "23:59"}, False)
        assert await queues.team_for_card(s, "billing") == "billing"
        assert await queues.team_for_card(s, "accounts") == "support"
        ada = await create_agent(s, "ada", "Ada", "correct horse")
        assert await teams.working_teams(s, ada.id) == {"support"}  # no team: the default one
        await teams.set_teams(s, ada.id, ["billing"])
        assert await teams.working_teams(s, ada.id) == {"billing"}
        with pytest.raises(ValueError):
            await teams.set_teams(s, ada.id, ["nope"])


async def test_transfers_keep_history_and_record_a_segment_per_agent(
    db: tuple[str, async_sessionmaker[AsyncSession]],
) -> None:
    _, sessions = db
    async with sessions() as s, s.begin():
        await s.run_sync(store.open_conversation, "conv-t0001", {"name": "Maya", "email": "maya@example.com"})
        await s.run_sync(store.add_message, "conv-t0001", "customer", "my bill is wrong")
        ada = await create_agent(s, "ada", "Ada", "correct horse")
        bob = await create_agent(s, "bob", "Bob", "battery staple")
        await teams.save_team(s, "billing", "Billing", None, False)
        ticket, _ = await tickets.open_ticket(s, "conv-t0001", {"reason": "customer_asked"}, team="support")
    async with sessions() as s, s.begin():
        assert await tickets.accept(s, ticket.id, ada.id) is not None
        assert await tickets.transfer_to_agent(s, ticket.id, bob.id, ada.id) is None  # only the seated agent
        assert await tickets.transfer_to_agent(s, ticket.id, ada.id, ada.id) is None  # not to oneself
        moved = await tickets.transfer_to_agent(s, ticket.id, ada.id, bob.id)
        assert moved is not None and moved.agent_id == bob.id and moved.status == "assigned"
        assert await tickets.active_counts(s) == {bob.id: 1}
    async with sessions() as s, s.begin():
        queued = await tickets.transfer_to_team(s, ticket.id, bob.id, "billing")
        assert queued is not None and queued.status == "queued" and queued.team == "billing"
        assert (await s.get(Conversation, "conv-t0001")).status == "queued"  # type: ignore[union-attr]
        assert [t.id for t in await tickets.waiting(s, {"billing"})] == [ticket.id]
        assert await tickets.waiting(s, {"support"}, unrouted=False) == []
        assert await tickets.accept(s, ticket.id, ada.id) is not None
        assert await tickets.resolve(s, ticket.id, ada.id) is not None
    async with sessions() as s:
        segments = await tickets.segments(s, ticket.id)
        assert [(g.agent_id, g.team, g.ended_by) for g in segments] == [
            (ada.id, "support", "transfer"), (bob.id, "support", "transfer"), (ada.id, "billing", "resolve")
        ]  # fmt: skip
        assert all(g.ended_at is not None for g in segments)
        assert len(await tickets.recent_handle_times(s, "billing")) == 1  # handle time after the transfer
        conversation = await s.get(Conversation, "conv-t0001")
        assert conversation is not None
        record = await customer_record(s, conversation)
        assert record.tickets[0].agents == ["Ada", "Bob", "Ada"]


async def test_queue_status_reports_nobody_online_then_a_wait(db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    _, sessions = db
    async with sessions() as s, s.begin():
        ada = await create_agent(s, "ada", "Ada", "correct horse")
        for conv in ("conv-q0001", "conv-q0002"):
            await s.run_sync(store.open_conversation, conv, None)
        first, _ = await tickets.open_ticket(s, "conv-q0001", {"reason": "customer_asked"}, team="support")
        second, _ = await tickets.open_ticket(s, "conv-q0002", {"reason": "customer_asked"}, team="support")
        status = await queues.status_of(s, second)
        assert status.availability == "no_agents" and status.wait_s is None and "email" in queues.queue_text(status)
        await teams.set_presence(s, ada.id, "online")
        agent = await s.get(Agent, ada.id)
        assert agent is not None
        agent.capacity = 1
    async with sessions() as s:
        status = await queues.status_of(s, second)
        assert status.availability == "open" and status.position == 2 and status.wait_s == 150  # half of 5 min
        assert "number 2" in queues.queue_text(status) and (await queues.status_of(s, first)).wait_s == 0


async def test_demo_admin_is_created_once(db: tuple[str, async_sessionmaker[AsyncSession]]) -> None:
    url, sessions = db
    password = await ensure_demo_admin(url)
    assert password and len(password) >= 12
    assert await ensure_demo_admin(url) is None  # an admin exists: nothing printed again
    async with sessions() as s:
        admin = (await s.execute(__import__("sqlalchemy").select(Agent).where(Agent.username == "admin"))).scalar_one()
        assert admin.role == "admin" and await teams.teams_of(s, admin.id) == {"support"}
