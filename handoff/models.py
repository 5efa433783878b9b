"""Tables for conversations and their messages. A message is stored once, before anyone is told about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from common.db import Base, UtcDateTime


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the Socket.IO session_id, also Rasa's sender_id
    status: Mapped[str] = mapped_column(String(16), default="bot")  # bot | queued | agent | resolved
    customer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # name, email, page it started on
    # Rasa paused this conversation at the handoff; it is resumed (once) before the bot's next turn.
    bot_paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Read receipts: the last message id each side has seen (one number per side, not a row per message).
    customer_read_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    agent_read_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A client resending a message (after a reconnect) must not store it twice.
        UniqueConstraint("conversation_id", "client_id", name="uq_messages_client_id"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(16))  # customer | bot | agent | system
    text: Mapped[str] = mapped_column(Text, default="")
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The bot's reading of a customer message: intent, confidence, top intents, entities.
    parse: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Anything else the bot sent with its text (quick replies, custom payloads).
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message as the chat's hot path stored it: the same fields as ``Message`` without the ORM's instrumentation
    (building a mapped object cost about 20 us, on every message)."""

    id: int
    conversation_id: str
    sender: str
    text: str
    client_id: str | None
    parse: dict[str, Any] | None
    data: dict[str, Any] | None
    created_at: datetime


AnyMessage = Message | MessageRow  # what the pages' and events' builders take: a stored row or a loaded object


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, via argon2-cffi
    role: Mapped[str] = mapped_column(String(16), default="agent", server_default="agent")  # agent | editor | admin
    # What the agent says about themselves; routing offers chats only to "online" agents with free capacity.
    presence: Mapped[str] = mapped_column(String(16), default="offline", server_default="offline")
    capacity: Mapped[int] = mapped_column(Integer, default=3, server_default="3")  # most chats at once
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AgentToken(Base):
    """A login session of an agent; only a hash of the bearer token is stored."""

    __tablename__ = "agent_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # One escalation, one ticket: at most one unresolved ticket per conversation, enforced by the database so
        # a retried action or a second relay process cannot make another.
        Index(
            "uq_tickets_open_per_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | assigned | resolved
    reason: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the handoff card packaged by the bot
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The team whose queue holds the ticket (routing decided it from the article's team; a transfer changes it).
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The agent routing offered the ticket to (a hint: any agent of the team may still accept it).
    offered_to: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), nullable=True)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # the slug KB articles name in ``team:``
    title: Mapped[str] = mapped_column(String(120))
    # Escalations whose article names no known team land here; exactly one team should be the default.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # {"tz": "Europe/Paris", "days": [0..6, Monday=0], "start": "08:00", "end": "18:00"}; None means always open.
    hours: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)


class TicketSegment(Base):
    """One agent's stretch on a ticket: accept (or a transfer in) to transfer out (or resolve). Handle time per agent."""

    __tablename__ = "ticket_segments"
    __table_args__ = (Index("ix_ticket_segments_ticket_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(16), nullable=True)  # transfer | resolve


class CannedResponse(Base):
    __tablename__ = "canned_responses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shortcut: Mapped[str] = mapped_column(String(64))  # what the agent types after "/"
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # may hold {{customer.name}}, {{agent.name}}, {{ticket.id}}
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=True
    )  # None: shared
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class KbAnswer(Base):
    """One KB answer the bot gave, and what the customer said to "Did that answer your question?" (None: nothing).

    Written by the action server (actions/feedback.py), keyed by an id it makes, so the yes / no buttons of an answer
    name it and count once. No foreign key to ``conversations``: the action can run before the relay has stored the
    conversation's first message."""

    __tablename__ = "kb_answers"
    __table_args__ = (
        Index("ix_kb_answers_created_at", "created_at"),
        Index("ix_kb_answers_conversation_id", "conversation_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(64))
    article_id: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the article's team, for the team filter
    helpful: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    feedback_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ChatRating(Base):
    """The customer's 1-5 rating of a bot-only chat: asked once (they ended the chat, or it went idle), kept once.

    A ticket's rating stays on ``tickets.rating``; this is for chats no person took part in."""

    __tablename__ = "chat_ratings"

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    asked_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    asked_because: Mapped[str] = mapped_column(String(16))  # ended | idle | customer (rated unasked)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    rated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


# Reports read by date range (handoff/reports.py): these keep a 30-day report off full-table scans.
Index("ix_conversations_created_at", Conversation.created_at)
Index("ix_tickets_created_at", Ticket.created_at)
Index("ix_ticket_segments_started_at", TicketSegment.started_at)
# "Did this conversation escalate?" for every conversation of a report (the unique index covers open tickets only).
Index("ix_tickets_conversation_id", Ticket.conversation_id)


# --- The copilot (handoff/copilot.py): what was suggested to agents, what they used, what they saved to the KB ---


SUGGESTION_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite's INTEGER is 64 bits already


class CopilotSuggestion(Base):
    """One set of suggestions shown to an agent for a customer message (or with a handoff), as it was sent."""

    __tablename__ = "copilot_suggestions"
    __table_args__ = (
        Index("ix_copilot_suggestions_ticket_id", "ticket_id"),
        Index("ix_copilot_suggestions_created_at", "created_at"),
    )

    # Made by the relay before the set is stored (handoff.copilot.new_suggestion_id): 52 bits, past a 32-bit INTEGER.
    id: Mapped[int] = mapped_column(SUGGESTION_ID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the customer's message
    agent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # seated then (None: still queued)
    context: Mapped[str] = mapped_column(String(16))  # message | handoff
    kb_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the SuggestionsOut sent (re-sent after a reload)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CopilotItem(Base):
    """One article or canned response of a set: "shown", per article and per agent."""

    __tablename__ = "copilot_items"
    __table_args__ = (Index("ix_copilot_items_ref", "kind", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    suggestion_id: Mapped[int] = mapped_column(SUGGESTION_ID, ForeignKey("copilot_suggestions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # article | canned
    ref: Mapped[str] = mapped_column(String(128))  # the article id or the canned response's id
    rank: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(nullable=True)


class CopilotUse(Base):
    """An agent inserted a suggestion; ``outcome`` once a message with it went out: unchanged | edited."""

    __tablename__ = "copilot_uses"
    __table_args__ = (Index("ix_copilot_uses_item_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("copilot_items.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(Integer)
    inserted_text: Mapped[str] = mapped_column(Text)
    inserted_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    message_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class CopilotSaved(Base):
    """An agent's answer saved to the KB: a draft article or new example questions, and its inbox entry."""

    __tablename__ = "copilot_saved"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(Integer)
    conversation_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[int] = mapped_column(Integer)
    agent_name: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[int] = mapped_column(Integer)  # the agent's answer
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16))  # draft | examples
    article_id: Mapped[str] = mapped_column(String(128))
    version_id: Mapped[int] = mapped_column(Integer)  # the draft version editors publish
    inbox_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # kb_unanswered row
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
