"""The relay's handlers wired to recording fakes (tests/fakes.py) over a real SQLite file: the ``relay`` fixture
(registered in conftest.py) and the steps tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.db import HotPathWriter, create_engine, session_factory
from common.settings import Settings
from handoff import events, queues, tickets
from handoff.agent import AgentSide
from handoff.auth import create_agent
from handoff.console import ConsoleSide
from handoff.customer import HUMAN_PAYLOAD, CustomerPolicy, CustomerSide, SocketSessions
from handoff.models import Message
from handoff.outbox import Outbox
from handoff.ratelimit import Limiter
from tests.fakes import RecordingSio, ScriptedBot
from warmline.migrate import upgrade

C, A = events.CUSTOMER_NAMESPACE, events.AGENT_NAMESPACE
CARD = {"custom": {"handoff": {"reason": "customer_asked", "reason_text": "The customer asked for a person."}}}
SESSION = "sess-0001"


@dataclass
class Relay:
    sio: RecordingSio
    bot: ScriptedBot
    sessions: async_sessionmaker[AsyncSession]
    dispatcher: queues.Dispatcher

    async def say(self, text: str, client_id: str | None = None, sid: str = "c1") -> dict:
        return await self.sio.call(C, "user_uttered", sid, {"message": text, "client_id": client_id})

    async def messages(self) -> list[tuple[str, str]]:
        async with self.sessions() as s:
            rows = (
                await s.execute(select(Message).where(Message.conversation_id == SESSION).order_by(Message.id))
            ).scalars()
            return [(m.sender, m.text) for m in rows]


FAST_LIMITS = Settings(**{name: "1000 per second" for name in Settings.model_fields if name.startswith("rate_")})


@dataclass
class Wired:
    """The relay's three sides, wired as handoff.app wires them, on recording fakes over a real SQLite file."""

    sio: RecordingSio
    outbox: Outbox
    bot: ScriptedBot
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    writer: HotPathWriter
    dispatcher: queues.Dispatcher
    customer: CustomerSide
    agent: AgentSide
    console: ConsoleSide

    async def close(self) -> None:
        await self.dispatcher.settled()
        self.writer.close()
        await self.engine.dispose()


def wire(url: str, settings: Settings = FAST_LIMITS) -> Wired:
    """Migrate the database at ``url`` and register the customer, agent and console sides (``settings`` gives the
    rate limits and the customer policy; by default limits no test reaches)."""
    upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    sio, bot = RecordingSio(), ScriptedBot()
    outbox = Outbox(sio)
    writer = HotPathWriter(engine)
    dispatcher = queues.Dispatcher(outbox, sessions)
    policy = CustomerPolicy.from_settings(settings)
    limiter = Limiter.create(settings)
    customer = CustomerSide(sio, outbox, sessions, writer, bot, dispatcher, 4000, SocketSessions(sio), policy, limiter)
    agent = AgentSide(sio, outbox, sessions, writer, bot, dispatcher, policy.origins)
    console = ConsoleSide(sio, outbox, sessions, settings, dispatcher)
    for side in (customer, agent, console):
        side.register()
    return Wired(sio, outbox, bot, engine, sessions, writer, dispatcher, customer, agent, console)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    wired = wire(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")
    relay = Relay(wired.sio, wired.bot, wired.sessions, wired.dispatcher)
    await wired.sio.call(C, "session_request", "c1", {"session_id": SESSION, "customData": {"name": "Ana"}})
    yield relay
    await wired.close()


async def seat_agent(relay: Relay, sid: str = "a1", username: str = "ada") -> int:
    async with relay.sessions() as s, s.begin():
        agent = await create_agent(s, username, username.title(), "correct horse battery")
    await relay.sio.save_session(sid, {"agent_id": agent.id, "name": agent.name, "role": agent.role}, namespace=A)
    return agent.id


async def escalate(relay: Relay) -> int:
    relay.bot.replies.append([{"text": "Let me find a person."}, CARD])
    await relay.say(HUMAN_PAYLOAD)
    async with relay.sessions() as s:
        ticket = await tickets.open_ticket_of(s, SESSION)
    assert ticket is not None
    return ticket.id
