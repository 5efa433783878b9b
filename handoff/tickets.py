"""Ticket lifecycle: open on escalation (once), accept (by one agent), resolve, rate. The caller commits.

Conversation status follows the ticket: bot -> queued (ticket opened) -> agent (accepted) -> bot (resolved); a
transfer to a team puts it back to queued, a transfer to an agent keeps it with an agent. Each agent's stretch on a
ticket is a ``TicketSegment`` (accept or transfer in -> transfer out or resolve), so handle time is per agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from common.clock import utcnow
from common.db import Executor
from common.driver import hot
from handoff.conversation import IllegalMove, Move, sources, target
from handoff.models import Conversation, Ticket, TicketSegment

OPEN = ("queued", "assigned")


async def open_ticket(
    s: AsyncSession, conversation_id: str, card: dict[str, Any], team: str | None = None
) -> tuple[Ticket, bool]:
    """Open the conversation's ticket, or return the one already open (a retried escalation makes no second one)."""
    existing = await open_ticket_of(s, conversation_id)
    if existing is not None:
        return existing, False
    ticket = Ticket(
        conversation_id=conversation_id, status="queued", reason=str(card.get("reason") or "unknown"), card=card,
        team=team,
    )  # fmt: skip
    s.add(ticket)
    try:
        async with s.begin_nested():
            await s.flush()
    except IntegrityError:  # another process opened it a moment ago; the partial unique index decided
        existing = await open_ticket_of(s, conversation_id)
        assert existing is not None
        return existing, False
    await _set_status(s, conversation_id, Move.ESCALATE)
    return ticket, True


async def open_ticket_of(s: AsyncSession, conversation_id: str) -> Ticket | None:
    result = await s.execute(select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status.in_(OPEN)))
    return result.scalar_one_or_none()


class TicketRef(NamedTuple):
    """What the hot path needs of a ticket, read as one row (no ORM object: every human-phase message reads it)."""

    id: int
    conversation_id: str
    status: str
    agent_id: int | None
    team: str | None


# On the table (SQLAlchemy Core), so they run on the hot-path writer's Connection without the ORM's compile step.
TICKETS: Table = Ticket.__table__  # type: ignore[assignment]
_TICKET_REF = select(TICKETS.c.id, TICKETS.c.conversation_id, TICKETS.c.status, TICKETS.c.agent_id, TICKETS.c.team)
# The open statuses as plain bound values, not an expanding IN: that one is rewritten for its values on every
# execution (about 20 us here), and every customer message away from the bot runs this.
_OPEN_TICKET_REF = hot(
    _TICKET_REF.where(
        TICKETS.c.conversation_id == bindparam("cid"), or_(*(TICKETS.c.status == status for status in OPEN))
    )
)
_TICKET_REF_BY_ID = hot(_TICKET_REF.where(TICKETS.c.id == bindparam("tid")))


def open_ticket_in(s: Executor, conversation_id: str) -> TicketRef | None:
    """The conversation's open ticket inside a sync unit of work (the hot-path writer's)."""
    row = s.execute(_OPEN_TICKET_REF, {"cid": conversation_id}).one_or_none()
    return TicketRef(*row) if row is not None else None


def ticket_in(s: Executor, ticket_id: int) -> TicketRef | None:
    row = s.execute(_TICKET_REF_BY_ID, {"tid": ticket_id}).one_or_none()
    return TicketRef(*row) if row is not None else None


async def queue_position(s: AsyncSession, ticket: Ticket) -> int:
    """1 for the next ticket an agent of its team will take; fair queueing is first come, first served per team."""
    ahead = await s.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.status == "queued", Ticket.id < ticket.id, Ticket.team.is_not_distinct_from(ticket.team))
    )
    return int(ahead or 0) + 1


async def waiting(s: AsyncSession, teams: set[str] | None = None, unrouted: bool = True) -> Sequence[Ticket]:
    """Queued tickets, oldest first; only those of ``teams`` when given (plus, if ``unrouted``, tickets opened
    before routing existed, which have no team)."""
    query = select(Ticket).where(Ticket.status == "queued").order_by(Ticket.id)
    if teams is not None:
        query = query.where(or_(Ticket.team.in_(teams), Ticket.team.is_(None)) if unrouted else Ticket.team.in_(teams))
    result = await s.execute(query)
    return list(result.scalars())


async def record_offers(s: AsyncSession, offers: dict[int, int]) -> None:
    """Remember which agent each ticket was offered to; a ticket taken meanwhile keeps no offer."""
    for ticket_id, agent_id in offers.items():
        await s.execute(
            update(Ticket).where(Ticket.id == ticket_id, Ticket.status == "queued").values(offered_to=agent_id)
        )


async def assigned_to(s: AsyncSession, agent_id: int) -> Sequence[Ticket]:
    result = await s.execute(
        select(Ticket).where(Ticket.status == "assigned", Ticket.agent_id == agent_id).order_by(Ticket.id)
    )
    return list(result.scalars())


def _move_in(s: Session, ticket_id: int, *conditions: Any, **values: Any) -> Ticket | None:
    """One atomic conditional UPDATE of the ticket; the updated ticket, or None if ``conditions`` no longer held
    (another agent or process got there first)."""
    result = s.execute(update(Ticket).where(Ticket.id == ticket_id, *conditions).values(**values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    ticket = s.get(Ticket, ticket_id, populate_existing=True)
    assert ticket is not None
    return ticket


async def _move(s: AsyncSession, ticket_id: int, *conditions: Any, **values: Any) -> Ticket | None:
    return await s.run_sync(_move_in, ticket_id, *conditions, **values)


def accept_in(s: Session, ticket_id: int, agent_id: int) -> Ticket | None:
    """Seat the agent; None if the ticket is gone or someone else took it (one atomic conditional update). A plain
    function over a sync session: the agent's accept runs it on the hot-path writer (``AgentSide.accept``)."""
    ticket = _move_in(
        s, ticket_id, Ticket.status == "queued", status="assigned", agent_id=agent_id, accepted_at=utcnow()
    )
    if ticket is None:
        return None
    _set_status_in(s, ticket.conversation_id, Move.ACCEPT)
    s.add(TicketSegment(ticket_id=ticket.id, agent_id=agent_id, team=ticket.team))
    return ticket


async def accept(s: AsyncSession, ticket_id: int, agent_id: int) -> Ticket | None:
    return await s.run_sync(accept_in, ticket_id, agent_id)


async def resolve(s: AsyncSession, ticket_id: int, agent_id: int) -> Ticket | None:
    ticket = await _move(
        s, ticket_id, Ticket.status == "assigned", Ticket.agent_id == agent_id, status="resolved", resolved_at=utcnow()
    )
    if ticket is None:
        return None
    await _set_status(s, ticket.conversation_id, Move.RESOLVE)
    await _end_segment(s, ticket.id, agent_id, "resolve")
    return ticket


async def transfer_to_agent(s: AsyncSession, ticket_id: int, from_agent: int, to_agent: int) -> Ticket | None:
    """Hand a seated chat straight to another agent (one conditional update); None if it is not from_agent's."""
    if from_agent == to_agent:
        return None
    ticket = await _move(
        s, ticket_id, Ticket.status == "assigned", Ticket.agent_id == from_agent, agent_id=to_agent, offered_to=None
    )
    if ticket is None:
        return None
    await _set_status(s, ticket.conversation_id, Move.TRANSFER_TO_AGENT)
    await _end_segment(s, ticket.id, from_agent, "transfer")
    s.add(TicketSegment(ticket_id=ticket.id, agent_id=to_agent, team=ticket.team))
    return ticket


async def transfer_to_team(s: AsyncSession, ticket_id: int, from_agent: int, team: str) -> Ticket | None:
    """Put a seated chat back in a (possibly other) team's queue; the next agent to accept it gets the history."""
    ticket = await _move(
        s, ticket_id, Ticket.status == "assigned", Ticket.agent_id == from_agent,
        status="queued", agent_id=None, team=team, offered_to=None,
    )  # fmt: skip
    if ticket is None:
        return None
    await _set_status(s, ticket.conversation_id, Move.TRANSFER_TO_TEAM)
    await _end_segment(s, ticket.id, from_agent, "transfer")
    return ticket


async def segments(s: AsyncSession, ticket_id: int) -> Sequence[TicketSegment]:
    result = await s.execute(
        select(TicketSegment).where(TicketSegment.ticket_id == ticket_id).order_by(TicketSegment.id)
    )
    return list(result.scalars())


async def recent_handle_times(s: AsyncSession, team: str | None, limit: int = 50) -> list[float]:
    """Seconds per finished agent segment of ``team``, oldest first: what the wait estimate learns from."""
    query = (
        select(TicketSegment).where(TicketSegment.ended_at.is_not(None)).order_by(TicketSegment.id.desc()).limit(limit)
    )
    if team is not None:
        query = query.where(TicketSegment.team == team)
    rows = list((await s.execute(query)).scalars())
    return [seconds_between(r.started_at, r.ended_at) for r in reversed(rows) if r.ended_at is not None]


def active_counts_in(s: Session) -> dict[int, int]:
    """Open chats per agent right now (what capacity is measured against)."""
    result = s.execute(
        select(Ticket.agent_id, func.count()).where(Ticket.status == "assigned").group_by(Ticket.agent_id)
    )
    return {int(agent_id): int(n) for agent_id, n in result.all() if agent_id is not None}


async def active_counts(s: AsyncSession) -> dict[int, int]:
    return await s.run_sync(active_counts_in)


async def _end_segment(s: AsyncSession, ticket_id: int, agent_id: int, how: str) -> None:
    await s.execute(
        update(TicketSegment)
        .where(
            TicketSegment.ticket_id == ticket_id, TicketSegment.agent_id == agent_id, TicketSegment.ended_at.is_(None)
        )
        .values(ended_at=utcnow(), ended_by=how)
    )


def seconds_between(start: datetime, end: datetime) -> float:
    # SQLite hands back naive datetimes (stored as UTC); make both aware before subtracting.
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return (end - start).total_seconds()


async def rate(s: AsyncSession, ticket_id: int, conversation_id: str, score: int, comment: str | None) -> bool:
    """Store the customer's rating of a resolved ticket of their own conversation, once: a second rating is refused
    (False) and the first one stands, so a resent or repeated rating cannot change what the reports count
    (docs/reports.md)."""
    result = await s.execute(
        update(Ticket)
        .where(
            Ticket.id == ticket_id,
            Ticket.conversation_id == conversation_id,
            Ticket.status == "resolved",
            Ticket.rating.is_(None),
        )
        .values(rating=score, rating_comment=comment)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _set_status_in(s: Session, conversation_id: str, move: Move) -> None:
    """The conversation follows its ticket, only by a move the core allows from where it stands (one conditional
    UPDATE); anything else rolls the caller's transaction back."""
    result = s.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.status.in_(sorted(sources(move))))
        .values(status=target(move), updated_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise IllegalMove()


async def _set_status(s: AsyncSession, conversation_id: str, move: Move) -> None:
    await s.run_sync(_set_status_in, conversation_id, move)
