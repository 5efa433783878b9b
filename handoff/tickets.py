"""Ticket lifecycle: open on escalation (once), accept (by one agent), resolve, rate. The caller commits.

Conversation status follows the ticket: bot -> queued (ticket opened) -> agent (accepted) -> bot (resolved).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.models import Conversation, Ticket, utcnow

OPEN = ("queued", "assigned")


async def open_ticket(s: AsyncSession, conversation_id: str, card: dict[str, Any]) -> tuple[Ticket, bool]:
    """Open the conversation's ticket, or return the one already open (a retried escalation makes no second one)."""
    existing = await open_ticket_of(s, conversation_id)
    if existing is not None:
        return existing, False
    ticket = Ticket(conversation_id=conversation_id, status="queued", reason=str(card.get("reason") or "unknown"), card=card)
    s.add(ticket)
    try:
        async with s.begin_nested():
            await s.flush()
    except IntegrityError:  # another process opened it a moment ago; the partial unique index decided
        existing = await open_ticket_of(s, conversation_id)
        assert existing is not None
        return existing, False
    await _set_status(s, conversation_id, "queued")
    return ticket, True


async def open_ticket_of(s: AsyncSession, conversation_id: str) -> Ticket | None:
    result = await s.execute(
        select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status.in_(OPEN))
    )
    return result.scalar_one_or_none()


async def queue_position(s: AsyncSession, ticket: Ticket) -> int:
    """1 for the next ticket an agent will take; fair queueing is first come, first served."""
    ahead = await s.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.status == "queued", Ticket.id < ticket.id)
    )
    return int(ahead or 0) + 1


async def waiting(s: AsyncSession) -> Sequence[Ticket]:
    result = await s.execute(select(Ticket).where(Ticket.status == "queued").order_by(Ticket.id))
    return list(result.scalars())


async def assigned_to(s: AsyncSession, agent_id: int) -> Sequence[Ticket]:
    result = await s.execute(
        select(Ticket).where(Ticket.status == "assigned", Ticket.agent_id == agent_id).order_by(Ticket.id)
    )
    return list(result.scalars())


async def accept(s: AsyncSession, ticket_id: int, agent_id: int) -> Ticket | None:
    """Seat the agent; None if the ticket is gone or someone else took it (one atomic conditional update)."""
    result = await s.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status == "queued")
        .values(status="assigned", agent_id=agent_id, accepted_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    ticket = await s.get(Ticket, ticket_id, populate_existing=True)
    assert ticket is not None
    await _set_status(s, ticket.conversation_id, "agent")
    return ticket


async def resolve(s: AsyncSession, ticket_id: int, agent_id: int) -> Ticket | None:
    result = await s.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status == "assigned", Ticket.agent_id == agent_id)
        .values(status="resolved", resolved_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    ticket = await s.get(Ticket, ticket_id, populate_existing=True)
    assert ticket is not None
    await _set_status(s, ticket.conversation_id, "bot")
    return ticket


async def rate(s: AsyncSession, ticket_id: int, conversation_id: str, score: int, comment: str | None) -> bool:
    """Store the customer's rating of a resolved ticket of their own conversation; rating again replaces it."""
    result = await s.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.conversation_id == conversation_id, Ticket.status == "resolved")
        .values(rating=score, rating_comment=comment)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def _set_status(s: AsyncSession, conversation_id: str, status: str) -> None:
    await s.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(status=status, updated_at=utcnow())
    )
