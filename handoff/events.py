"""Socket.IO event names and payload models.

The customer side speaks the protocol of Rasa's own socketio channel (``session_request`` / ``session_confirm`` /
``user_uttered`` / ``bot_uttered``), so a website widget made for Rasa works unchanged; ``history``,
``relay_error`` and the ``client_id`` field are Warmline's additions, which such widgets ignore.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Customer namespace (Rasa's names).
SESSION_REQUEST = "session_request"
SESSION_CONFIRM = "session_confirm"
USER_UTTERED = "user_uttered"
BOT_UTTERED = "bot_uttered"
# Warmline additions.
HISTORY = "history"
RELAY_ERROR = "relay_error"

CUSTOMER_NAMESPACE = "/"

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_client_id(value: str | None) -> str | None:
    if value is not None and not CLIENT_ID_RE.match(value):
        raise ValueError("client_id must be 1-64 letters, digits or '-_.:'")
    return value


class CustomerContext(BaseModel):
    """What the widget knows of the customer; all optional. Unknown keys are dropped, not stored."""

    model_config = ConfigDict(extra="ignore", str_max_length=320)

    name: str | None = None
    email: str | None = None
    page: str | None = Field(default=None, max_length=2000)


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    session_id: str | None = None
    customData: CustomerContext | None = None

    @field_validator("session_id")
    @classmethod
    def _session_id_shape(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not SESSION_ID_RE.match(value):
            raise ValueError("session_id must be 8-64 letters, digits, '-' or '_'")
        return value


class UserUttered(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str
    session_id: str | None = None
    client_id: str | None = None
    customData: CustomerContext | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message is empty")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id_shape(cls, value: str | None) -> str | None:
        return check_client_id(value)


class QuickReply(BaseModel):
    content_type: str = "text"
    title: str
    payload: str


class BotUtteredPayload(BaseModel):
    """What Rasa's SocketIOOutput emits for a text (optionally with quick replies), plus our message id and time."""

    model_config = ConfigDict(extra="allow")

    text: str | None = None
    quick_replies: list[QuickReply] | None = None
    message_id: int
    sender: str = "bot"
    ts: str


class HistoryMessage(BaseModel):
    message_id: int
    sender: str
    text: str
    client_id: str | None = None
    ts: str
    quick_replies: list[QuickReply] | None = None
    agent_name: str | None = None


class HistoryPayload(BaseModel):
    session_id: str
    status: str
    messages: list[HistoryMessage]
    agent_read_id: int | None = None  # read receipts: the last message id an agent has seen


class Ack(BaseModel):
    ok: bool
    message_id: int | None = None
    client_id: str | None = None
    duplicate: bool = False
    error: dict[str, Any] | None = None


# Customer namespace, human phase (Warmline additions).
QUEUE_POSITION = "queue_position"
RATING_REQUEST = "rating_request"
RATING = "rating"

# Agent namespace: agents log in over REST, then connect with ``auth={"token": ...}``.
AGENT_NAMESPACE = "/agent"
AGENTS_ROOM = "agents"
QUEUE = "queue"  # server -> agent: the waiting tickets, on connect
TICKET_WAITING = "ticket_waiting"  # server -> agents: a new ticket joined the queue
TICKET_TAKEN = "ticket_taken"  # server -> agents: a ticket left the queue
MY_CHATS = "my_chats"  # server -> agent: the agent's open chats with transcripts, on (re)connect
TICKET = "ticket"  # server -> agent: one chat (card + transcript), on accept
CHAT_MESSAGE = "chat_message"  # server -> agent: a new message in one of the agent's chats
TICKET_RESOLVED = "ticket_resolved"
ACCEPT = "accept"
AGENT_MESSAGE = "agent_message"
RESOLVE = "resolve"


class TicketRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: int


class AgentSays(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: int
    text: str
    client_id: str | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id_shape(cls, value: str | None) -> str | None:
        return check_client_id(value)


class Rating(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: int
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class TicketSummary(BaseModel):
    ticket_id: int
    conversation_id: str
    status: str
    reason: str
    reason_text: str | None = None
    team: str | None = None
    customer: dict[str, Any] = {}
    created_at: str
    position: int | None = None
    offered_to: int | None = None
    customer_read_id: int | None = None  # read receipts: the last message id the customer has seen
    agent_read_id: int | None = None


class ChatMessage(BaseModel):
    ticket_id: int
    message: HistoryMessage


class TicketDetail(BaseModel):
    ticket: TicketSummary
    card: dict[str, Any]
    messages: list[HistoryMessage]


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=200)

    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


# ---------------------------------------------------------------------------------------------------------------
# Agent console (issue 4): routing, presence, transfers, typing, read receipts, canned responses, KB search.
# Rooms are named here so every sender names recipients the same way (Zulip's "sender names the recipients").


def agent_room(agent_id: int) -> str:
    """Every socket of one agent (several tabs, several relay processes)."""
    return f"agent:{agent_id}"


def team_room(team: str) -> str:
    """Agents working one team's queue."""
    return f"team:{team}"


# Customer namespace.
TYPING = "typing"  # both namespaces, both directions: someone is (or stopped) typing
READ = "read"  # both namespaces, both directions: the last message id one side has seen
EMAIL_REQUEST = "email_request"  # server -> customer: nobody can come now; leave an email for a follow-up
LEAVE_EMAIL = "leave_email"  # customer -> server

# Agent namespace.
TICKET_OFFERED = "ticket_offered"  # server -> one agent: routing chose you for this ticket
CHAT_ASSIGNED = "chat_assigned"  # server -> one agent: a chat was transferred to you (sync to get it)
TICKET_TRANSFERRED = "ticket_transferred"  # server -> the chat's room: it moved on; the sender leaves it
PRESENCE = "presence"  # agent -> server: online | away | offline
TRANSFER = "transfer"
CANNED = "canned"  # agent -> server: canned responses for "/query", rendered for one ticket
KB_SEARCH = "kb_search"
CUSTOMER_RECORD = "customer_record"  # agent -> server: the customer's past conversations and tickets
DIRECTORY = "directory"  # agent -> server: agents and teams to transfer to


class QueueStatus(BaseModel):
    """``queue_position``: where a waiting customer stands, live. ``wait_s`` is None when no one is online."""

    ticket_id: int
    team: str
    position: int
    wait_s: int | None = None
    wait_text: str = ""
    availability: str = "open"  # open | no_agents | closed
    opens_at: str | None = None


class TypingIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: int | None = None  # agents say which chat; a customer has only one
    typing: bool = True


class TypingOut(BaseModel):
    ticket_id: int | None = None
    sender: str  # customer | agent
    name: str | None = None
    typing: bool


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: int | None = None
    message_id: int = Field(ge=1)


class ReadOut(BaseModel):
    ticket_id: int | None = None
    reader: str  # customer | agent: whose eyes
    message_id: int


class EmailRequest(BaseModel):
    """``email_request``: nobody can come now (``reason`` no_agents | closed); the ticket stays open."""

    ticket_id: int
    reason: str
    opens_at: str | None = None


class LeaveEmail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: str = Field(min_length=3, max_length=320)

    @field_validator("email")
    @classmethod
    def _looks_like_email(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError("that does not look like an email address")
        return value


class PresenceIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    presence: str = Field(pattern="^(online|away|offline)$")


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: int
    to_agent_id: int | None = None
    to_team: str | None = Field(default=None, max_length=64)
    note: str = Field(max_length=2000)

    @field_validator("note")
    @classmethod
    def _note_required(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a transfer needs a note for the next agent")
        return value.strip()


class TransferOut(BaseModel):
    ticket_id: int
    conversation_id: str
    from_agent: str
    to_agent: str | None = None
    to_agent_id: int | None = None
    to_team: str | None = None
    note: str


class CannedQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticket_id: int | None = None
    query: str = Field(default="", max_length=64)


class CannedItem(BaseModel):
    id: int
    shortcut: str
    title: str
    text: str  # rendered for the ticket
    team: str | None = None


class KBQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, max_length=200)


class KBHit(BaseModel):
    id: str
    title: str
    answer: str
    team: str


class PastTicket(BaseModel):
    ticket_id: int
    conversation_id: str
    status: str
    reason: str
    team: str | None = None
    created_at: str
    resolved_at: str | None = None
    rating: int | None = None
    agents: list[str] = []


class CustomerRecord(BaseModel):
    customer: dict[str, Any]
    conversations: list[dict[str, Any]]  # id, status, created_at, messages (count)
    tickets: list[PastTicket]


class AgentRef(BaseModel):
    id: int
    name: str
    presence: str
    teams: list[str]
    active: int
    capacity: int


class TeamRef(BaseModel):
    name: str
    title: str
    is_default: bool
    hours: dict[str, Any] | None = None
