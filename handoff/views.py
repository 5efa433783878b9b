"""Rows -> payload models: what agents are sent about tickets."""

from __future__ import annotations

from handoff import events
from handoff.models import Conversation, Ticket

# Internal notes (a transfer's note) are for agents only: never in the customer's history or events.
AGENT_ONLY = frozenset({"note"})


def summary(
    ticket: Ticket, conversation: Conversation | None, position: int | None = None, as_of_message_id: int = 0
) -> events.TicketSummary:
    return events.TicketSummary(
        ticket_id=ticket.id,
        conversation_id=ticket.conversation_id,
        status=ticket.status,
        reason=ticket.reason,
        reason_text=ticket.card.get("reason_text"),
        team=ticket.team or ticket.card.get("team"),
        customer=conversation.customer if conversation else {},
        created_at=ticket.created_at.isoformat(),
        position=position,
        offered_to=ticket.offered_to,
        customer_read_id=conversation.customer_read_id if conversation else None,
        agent_read_id=conversation.agent_read_id if conversation else None,
        as_of_message_id=as_of_message_id,
    )
