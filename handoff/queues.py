"""Routing in practice: load plain data, ask ``handoff.routing``, store the answer, tell the people it concerns.

``Dispatcher.request(team)`` is called after anything that can move a team's queue (an escalation, an accept, a
resolve, a transfer, an agent's presence): soon after, ``refresh`` makes new offers and sends every waiting
customer their position and estimated wait. It recomputes from the database each time, so several relay
processes agree; and since each run sees every change made before it starts, requests that arrive while a run is
going coalesce into one more run (a burst of 50 escalations costs a few runs, not 50 of them in a row).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import utcnow
from common.db import reading
from handoff import events, routing, store, teams, telemetry, tickets, views
from handoff.conversation import agent_room, chat_room
from handoff.models import Conversation, Ticket
from handoff.outbox import Outbox
from handoff.routing import AgentLoad, Availability, TeamInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeamState:
    info: TeamInfo
    agents: list[AgentLoad]
    handle_s: float
    availability: Availability


async def team_state(s: AsyncSession, team: str, now: datetime | None = None) -> TeamState:
    infos = await teams.team_infos(s)
    default = routing.team_for(None, infos)
    info = next((t for t in infos if t.name == team), TeamInfo(team))
    agents = routing.members(team, await teams.loads(s), default)
    handle_s = routing.handle_time(await tickets.recent_handle_times(s, team))
    return TeamState(info, agents, handle_s, routing.availability(info, agents, now or utcnow()))


async def team_for_card(s: AsyncSession, article_team: str | None) -> str:
    await teams.default_team(s)  # make sure there is somewhere to land
    return routing.team_for(article_team, await teams.team_infos(s))


def ticket_team(ticket: Ticket, default: str = teams.DEFAULT_TEAM) -> str:
    return ticket.team or default  # tickets opened before routing existed belong to the default queue


def queue_positions(queued: Sequence[Ticket]) -> dict[int, int]:
    """Every queued ticket's place in its team's queue (as ``tickets.queue_position``), from one list, oldest first."""
    seen: Counter[str | None] = Counter()
    positions = {}
    for ticket in queued:
        seen[ticket.team] += 1
        positions[ticket.id] = seen[ticket.team]
    return positions


async def status_of(
    s: AsyncSession,
    ticket: Ticket,
    state: TeamState | None = None,
    position: int | None = None,
    as_of_message_id: int | None = None,
) -> events.QueueStatus:
    state = state or await team_state(s, ticket_team(ticket))
    position = position if position is not None else await tickets.queue_position(s, ticket)
    if as_of_message_id is None:
        as_of_message_id = (await store.last_message_ids(s, [ticket.conversation_id]))[ticket.conversation_id]
    wait_s = routing.estimate_wait_s(position, state.agents, state.handle_s)
    return events.QueueStatus(
        ticket_id=ticket.id, team=state.info.name, position=position,
        wait_s=None if wait_s is None else round(wait_s), wait_text=routing.wait_text(wait_s),
        availability=state.availability.status, opens_at=state.availability.opens_at,
        as_of_message_id=as_of_message_id,
    )  # fmt: skip


def queue_text(status: events.QueueStatus) -> str:
    """What a waiting customer reads; says plainly when nobody can come, and what happens then."""
    if status.availability == "closed":
        return (
            f"Our team is closed right now (open {status.opens_at}). Leave your email and we'll get back to you; "
            "your request stays open."
        )
    if status.availability == "no_agents":
        return "No one from our team is online right now. Leave your email and we'll get back to you; your request stays open."
    ahead = "You're next" if status.position == 1 else f"You're number {status.position} in the queue"
    when = f" ({status.wait_text})" if status.wait_text else ""
    return f"{ahead}; a person will join this chat shortly{when}."


class Dispatcher:
    """One per relay process, shared by the customer, agent and console sides."""

    def __init__(self, outbox: Outbox, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.out = outbox
        self.sessions = sessions
        self._pending: set[str] = set()  # teams whose queue changed since their last run started
        self._runs: dict[str, asyncio.Task[None]] = {}

    def request(self, team: str) -> None:
        """Refresh ``team`` soon, without making the caller (an ack someone waits for) wait for it."""
        self._pending.add(team)
        if team not in self._runs:
            self._runs[team] = asyncio.create_task(self._run(team))

    async def settled(self) -> None:
        """Wait until no refresh is pending (for shutdown and tests)."""
        while self._runs:
            await asyncio.gather(*self._runs.values(), return_exceptions=True)

    async def _run(self, team: str) -> None:
        try:
            while team in self._pending:
                self._pending.discard(team)
                try:
                    await self.refresh(team)
                except Exception:  # the next change asks again; one failed run must not stop the queue
                    log.exception("refreshing the %s queue failed", team)
        finally:
            del self._runs[team]

    async def refresh(self, team: str) -> None:
        # Everything is read in a read-only transaction (a long queue costs dozens of statements, and holding the
        # write lock meanwhile would stall every chat message on SQLite); only the new offers are written.
        async with reading(self.sessions) as s:
            state = await team_state(s, team)
            queued = await tickets.waiting(s)
            positions = queue_positions(queued)
            waiting = [t for t in queued if ticket_team(t) == team]
            telemetry.queue_waiting(team, len(waiting))
            offers = routing.plan_offers([(t.id, t.offered_to) for t in waiting], state.agents)
            last_ids = await store.last_message_ids(s, [t.conversation_id for t in waiting])
            statuses = [
                (t.conversation_id, await status_of(s, t, state, positions[t.id], last_ids[t.conversation_id]))
                for t in waiting
            ]
            summaries = [
                (offers[t.id], views.summary(
                    t, await s.get(Conversation, t.conversation_id), as_of_message_id=last_ids[t.conversation_id]
                ).model_copy(update={"offered_to": offers[t.id]}))
                for t in waiting if t.id in offers
            ]  # fmt: skip
        if offers:
            async with self.sessions() as s, s.begin():
                await tickets.record_offers(s, offers)
        for agent_id, summary in summaries:
            await self.out.emit(events.TICKET_OFFERED, summary, to=agent_room(agent_id))
        for conversation_id, status in statuses:
            await self.out.emit(events.QUEUE_POSITION, status, to=chat_room(conversation_id))
