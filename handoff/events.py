"""The event catalogue: every Socket.IO event the relay receives or sends, each name beside its payload model.

An ``Event`` names the event, its namespace, its direction and its model. Handlers are registered by an incoming
event's name and validate with ``guard.parse(event.model, data)``; everything sent goes through
``Outbox.emit(event, payload)`` (handoff/outbox.py), which accepts only that event's model, so no plain dict
reaches a client. tests/test_event_shapes.py checks every payload the handlers emit against its model, and every
customer-bound ``bot_uttered`` against the shapes Rasa's own socketio channel emits.

The customer namespace ("/") speaks the protocol of Rasa 3.6's socketio channel (``session_request``,
``session_confirm``, ``user_uttered``, ``bot_uttered``), so a widget made for Rasa (rasa-webchat) works unchanged:
a ``bot_uttered`` has exactly Rasa's keys, and Warmline's extras (message id, sender, time, client id, agent name)
travel under ``metadata``, which Rasa's widgets ignore. The table of every event is docs/events.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

CUSTOMER_NAMESPACE = "/"
AGENT_NAMESPACE = "/agent"


class Direction(StrEnum):
    IN = "in"  # client -> relay
    OUT = "out"  # relay -> client


class Payload(BaseModel):
    """Base of every outgoing payload. ``omit_none``: fields left None are not sent at all (Rasa's widgets decide
    how to render a message by its exact set of keys)."""

    omit_none: ClassVar[bool] = False


def wire(payload: BaseModel) -> Any:
    """A payload as it goes on the wire (JSON types; a root model is its bare value)."""
    omit = isinstance(payload, Payload) and payload.omit_none
    return payload.model_dump(mode="json", exclude_none=omit)


class Incoming(BaseModel):
    """Base of every incoming payload: unknown keys are dropped, never stored, and text must be real text (a lone
    surrogate such as "\\ud800" cannot be stored in UTF-8: refused here, not failed in the database)."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text must be valid Unicode (no lone surrogates)") from None
        return value


# A row id: positive and within the databases' 64-bit INTEGER (a larger int reached SQLite and failed there).
RowId = Annotated[int, Field(ge=1, le=2**63 - 1)]


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Event(Generic[M]):
    name: str
    model: type[M]
    namespace: str
    direction: Direction
    rasa: bool = False  # part of Rasa's socketio protocol (else Warmline's addition)
    doc: str = field(default="", compare=False)


CATALOGUE: list[Event[Any]] = []


def _event(name: str, model: type[M], namespace: str, direction: Direction, doc: str, rasa: bool = False) -> Event[M]:
    event = Event(name, model, namespace, direction, rasa, doc)
    CATALOGUE.append(event)
    return event


def outgoing(namespace: str, name: str) -> Event[Any] | None:
    return next(
        (e for e in CATALOGUE if e.direction is Direction.OUT and (e.namespace, e.name) == (namespace, name)), None
    )


_IN, _OUT = Direction.IN, Direction.OUT
_C, _A = CUSTOMER_NAMESPACE, AGENT_NAMESPACE

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_client_id(value: str | None) -> str | None:
    if value is not None and not CLIENT_ID_RE.match(value):
        raise ValueError("client_id must be 1-64 letters, digits or '-_.:'")
    return value


class Empty(Incoming):
    pass


# ================================================================================================================
# Both namespaces
# ================================================================================================================


class ErrorPayload(Payload):
    """``relay_error``: what went wrong, in words a client may show (common/errors.py), and the event it answers."""

    model_config = ConfigDict(extra="allow")  # an error may add a detail (retry_after, ...)

    code: str
    message: str
    event: str | None = None


RELAY_ERROR = _event("relay_error", ErrorPayload, _C, _OUT, "An event was refused; nothing of it was stored.")
AGENT_RELAY_ERROR = _event("relay_error", ErrorPayload, _A, _OUT, "An agent event was refused.")


class TypingIn(Incoming):
    ticket_id: RowId | None = None  # agents say which chat; a customer has only one
    typing: bool = True


class TypingOut(Payload):
    ticket_id: int | None = None
    sender: str  # customer | agent
    name: str | None = None
    typing: bool


class ReadIn(Incoming):
    ticket_id: RowId | None = None
    message_id: RowId


class ReadOut(Payload):
    ticket_id: int | None = None
    reader: str  # customer | agent: whose eyes
    message_id: int


# ================================================================================================================
# Customer namespace "/"
# ================================================================================================================


class CustomerContext(Incoming):
    """What the widget knows of the customer; all optional. Unknown keys are dropped, not stored."""

    model_config = ConfigDict(extra="ignore", str_max_length=320)

    name: str | None = None
    email: str | None = None
    page: str | None = Field(default=None, max_length=2000)
    # Identity verification (handoff/identity.py): the site's id for its signed-in user, and its signature.
    user_id: str | None = Field(default=None, max_length=256)
    user_hash: str | None = Field(default=None, max_length=128)


class SessionRequest(Incoming):
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


SESSION_REQUEST = _event(
    "session_request", SessionRequest, _C, _IN, "Open or resume the chat (a stored session id resumes it).", rasa=True
)


class SessionConfirm(RootModel[str]):
    """The bare session id, as Rasa's channel sends it (widgets made for Rasa expect exactly that)."""


SESSION_CONFIRM = _event("session_confirm", SessionConfirm, _C, _OUT, "The chat's session id.", rasa=True)


class UserUttered(Incoming):
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


USER_UTTERED = _event(
    "user_uttered", UserUttered, _C, _IN, "The customer's message; `client_id` (Warmline's) makes a resend safe.", True
)


class QuickReply(BaseModel):
    content_type: str = "text"
    title: str
    payload: str


class MessageMeta(Payload):
    """Warmline's extras of a ``bot_uttered``: under ``metadata``, where Rasa's widgets ignore them."""

    omit_none = True

    message_id: int
    sender: str  # bot | agent | system
    ts: str
    client_id: str | None = None
    agent_name: str | None = None


class BotUttered(Payload):
    """One message to the customer, in a shape Rasa 3.6's SocketIOOutput emits: ``{text}``, ``{text,
    quick_replies}``, ``{attachment}`` (an image, or a generic template's ``elements``), or a custom payload as is
    (its own keys), always plus ``metadata``."""

    model_config = ConfigDict(extra="allow")  # a custom payload's own keys
    omit_none = True

    text: str | None = None
    quick_replies: list[QuickReply] | None = None
    attachment: dict[str, Any] | None = None
    metadata: MessageMeta


BOT_UTTERED = _event(
    "bot_uttered", BotUttered, _C, _OUT, "A message from the bot, an agent or the relay; extras under `metadata`.", True
)


class HistoryMessage(Payload):
    message_id: int
    sender: str
    text: str
    client_id: str | None = None
    ts: str
    quick_replies: list[QuickReply] | None = None
    agent_name: str | None = None


class HistoryPayload(Payload):
    session_id: str
    status: str
    messages: list[HistoryMessage]
    agent_read_id: int | None = None  # read receipts: the last message id an agent has seen


HISTORY = _event("history", HistoryPayload, _C, _OUT, "The chat so far, after session_confirm (reloads, new tabs).")


class QueueStatus(Payload):
    """Where a waiting customer stands, live. ``wait_s`` is None when no one is online.

    ``as_of_message_id`` is the conversation's newest message id when the status was read. A status read just
    before an agent accepted can arrive after the "joined" message (another task or relay process sent it); a
    client ignores one older than the last agent message it has seen. After a transfer back to a queue the status
    is read after the "transferred" message, so it shows again.
    """

    ticket_id: int
    team: str
    position: int
    wait_s: int | None = None
    wait_text: str = ""
    availability: str = "open"  # open | no_agents | closed
    opens_at: str | None = None
    as_of_message_id: int = 0


QUEUE_POSITION = _event("queue_position", QueueStatus, _C, _OUT, "Position and estimated wait while queued.")


class EmailRequest(Payload):
    """Nobody can come now (``reason`` no_agents | closed); the ticket stays open."""

    ticket_id: int
    reason: str
    opens_at: str | None = None


EMAIL_REQUEST = _event("email_request", EmailRequest, _C, _OUT, "Nobody can come now: leave an email for a follow-up.")


class LeaveEmail(Incoming):
    email: str = Field(min_length=3, max_length=320)

    @field_validator("email")
    @classmethod
    def _looks_like_email(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError("that does not look like an email address")
        return value


LEAVE_EMAIL = _event("leave_email", LeaveEmail, _C, _IN, "The customer's email for a follow-up.")


class RatingRequest(Payload):
    """Rate the help: a resolved ticket (``scope`` ticket, with its id), or a bot-only chat (``scope`` chat, when
    the customer ended it or it went idle: ``because``)."""

    ticket_id: int | None = None
    scope: Literal["ticket", "chat"] = "ticket"
    because: Literal["resolved", "ended", "idle"] = "resolved"
    question: str = "How would you rate the help you got?"
    scale: list[int] = [1, 2, 3, 4, 5]


RATING_REQUEST = _event("rating_request", RatingRequest, _C, _OUT, "Rate the help (a resolved ticket or a chat).")


class Rating(Incoming):
    ticket_id: RowId
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


RATING = _event("rating", Rating, _C, _IN, "The customer's 1-5 rating of a resolved ticket of theirs.")


class ChatRatingIn(Incoming):
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


END_CHAT = _event("end_chat", Empty, _C, _IN, "The customer ends a chat (a bot-only chat is then asked for a rating).")
CHAT_RATING = _event("chat_rating", ChatRatingIn, _C, _IN, "The customer's 1-5 rating of a bot-only chat.")
CUSTOMER_TYPING = _event("typing", TypingIn, _C, _IN, "The customer is (or stopped) typing.")
TYPING_TO_CUSTOMER = _event(
    "typing", TypingOut, _C, _OUT, "The agent is (or stopped) typing; their message also ends it (no event then)."
)
CUSTOMER_READ = _event("read", ReadIn, _C, _IN, "The customer has seen the chat up to `message_id`.")
READ_TO_CUSTOMER = _event("read", ReadOut, _C, _OUT, "The agent has seen the chat up to `message_id`.")


class Ack(Payload):
    """What ``user_uttered`` answers (a Socket.IO acknowledgement, not an event)."""

    ok: bool
    message_id: int | None = None
    client_id: str | None = None
    duplicate: bool = False
    error: dict[str, Any] | None = None


# ================================================================================================================
# Agent namespace "/agent": agents log in over REST, then connect with ``auth={"token": ...}``.
# ================================================================================================================


class TicketRef(Incoming):
    ticket_id: RowId


class TicketId(Payload):
    ticket_id: int


class TicketSummary(Payload):
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
    # The chat's newest message id when this was read: a console drops a waiting or offered ticket older than the
    # ticket_taken it has seen (they come from different tasks or processes, in either order; see QueueStatus).
    as_of_message_id: int = 0


class TicketTaken(Payload):
    """A ticket left the queue; ``as_of_message_id`` is its "joined" message (older queue events are stale)."""

    ticket_id: int
    as_of_message_id: int = 0


class TicketDetail(Payload):
    ticket: TicketSummary
    card: dict[str, Any]
    messages: list[HistoryMessage]


class ChatMessage(Payload):
    ticket_id: int
    message: HistoryMessage


class AgentSaid(Payload):
    """What ``agent_message`` answers: the stored message, which the sender's console shows from here. The chat's
    room on ``/agent`` gets it as ``chat_message`` except the sending socket (one send a message fewer)."""

    ok: bool = True
    ticket_id: int
    message_id: int
    client_id: str | None = None
    duplicate: bool = False
    message: HistoryMessage


class AgentSays(Incoming):
    ticket_id: RowId
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


class PresenceIn(Incoming):
    presence: str = Field(pattern="^(online|away|offline)$")


class TransferIn(Incoming):
    ticket_id: RowId
    to_agent_id: RowId | None = None
    to_team: str | None = Field(default=None, max_length=64)
    note: str = Field(max_length=2000)

    @field_validator("note")
    @classmethod
    def _note_required(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a transfer needs a note for the next agent")
        return value.strip()


class TransferOut(Payload):
    ticket_id: int
    conversation_id: str
    from_agent: str
    to_agent: str | None = None
    to_agent_id: int | None = None
    to_team: str | None = None
    note: str


class CannedQuery(Incoming):
    ticket_id: RowId | None = None
    query: str = Field(default="", max_length=64)


class CannedItem(Payload):
    id: int
    shortcut: str
    title: str
    text: str  # rendered for the ticket
    team: str | None = None


class KBQuery(Incoming):
    query: str = Field(min_length=1, max_length=200)


class KBHit(Payload):
    id: str
    title: str
    answer: str
    team: str


class PastTicket(Payload):
    ticket_id: int
    conversation_id: str
    status: str
    reason: str
    team: str | None = None
    created_at: str
    resolved_at: str | None = None
    rating: int | None = None
    agents: list[str] = []


class CustomerRecord(Payload):
    customer: dict[str, Any]
    verified: bool = False  # False: name and email are only what the page claimed; no other chat is joined
    conversations: list[dict[str, Any]]  # id, status, created_at
    tickets: list[PastTicket]


class AgentRef(Payload):
    id: int
    name: str
    presence: str
    teams: list[str]
    active: int
    capacity: int


class TeamRef(Payload):
    name: str
    title: str
    is_default: bool
    hours: dict[str, Any] | None = None


# Agent -> relay (each answered by an acknowledgement).
SYNC = _event("sync", Empty, _A, _IN, "The queue of my teams and my open chats with transcripts (on (re)connect).")
ACCEPT = _event("accept", TicketRef, _A, _IN, "Take a queued ticket.")
AGENT_MESSAGE = _event("agent_message", AgentSays, _A, _IN, "Say something in one of my chats.")
RESOLVE = _event("resolve", TicketRef, _A, _IN, "Close my chat and hand the customer back to the bot.")
PRESENCE = _event("presence", PresenceIn, _A, _IN, "online | away | offline.")
TRANSFER = _event("transfer", TransferIn, _A, _IN, "Hand my chat to an agent or a team, with a note.")
AGENT_TYPING = _event("typing", TypingIn, _A, _IN, "I am (or stopped) typing in one of my chats.")
AGENT_READ = _event("read", ReadIn, _A, _IN, "I have seen my chat up to `message_id`.")
CANNED = _event("canned", CannedQuery, _A, _IN, "Canned responses for a query, rendered for one ticket.")
KB_SEARCH = _event("kb_search", KBQuery, _A, _IN, "Search the published KB.")
CUSTOMER_RECORD = _event("customer_record", TicketRef, _A, _IN, "The customer's past conversations and tickets.")
DIRECTORY = _event("directory", Empty, _A, _IN, "Agents and teams to transfer to.")

# Relay -> agents.
TICKET_WAITING = _event("ticket_waiting", TicketSummary, _A, _OUT, "A ticket joined a queue of the team's room.")
TICKET_OFFERED = _event("ticket_offered", TicketSummary, _A, _OUT, "Routing chose this agent for a ticket.")
TICKET_TAKEN = _event("ticket_taken", TicketTaken, _A, _OUT, "A ticket left the queue (accepted).")
CHAT_MESSAGE = _event("chat_message", ChatMessage, _A, _OUT, "A new message in one of the agent's chats.")
TICKET_TRANSFERRED = _event("ticket_transferred", TransferOut, _A, _OUT, "A chat moved on; the sender leaves it.")
CHAT_ASSIGNED = _event("chat_assigned", TransferOut, _A, _OUT, "A chat was transferred to this agent (sync to get it).")
TICKET_RESOLVED = _event("ticket_resolved", TicketId, _A, _OUT, "A chat was closed.")
TYPING_TO_AGENT = _event(
    "typing", TypingOut, _A, _OUT, "The customer is (or stopped) typing; their message also ends it (no event then)."
)
READ_TO_AGENT = _event("read", ReadOut, _A, _OUT, "The customer (or the agent, in another tab) read up to here.")


# --- The copilot (handoff/copilot.py): suggestions for the seated agent only, never the customer's -----------


class SuggestedArticle(Payload):
    article_id: str
    title: str
    excerpt: str  # the answer's first words, to judge it at a glance
    text: str  # the whole answer, rendered for this ticket: what one click inserts
    confidence: float  # the live retriever's calibrated score, 0..1
    level: Literal["high", "medium", "low"]
    team: str | None = None


class SuggestedCanned(Payload):
    canned_id: int
    shortcut: str
    title: str
    text: str  # rendered for this ticket


class SuggestionsOut(Payload):
    """Suggestions for one customer message (``message_id``; None: no message to hang them on), kept on it."""

    suggestion_id: int  # the stored set (metrics: shown, inserted, sent)
    ticket_id: int
    message_id: int | None = None
    question: str
    context: Literal["message", "handoff"] = "message"  # handoff: came with accept or a transfer
    kb_version: str | None = None
    articles: list[SuggestedArticle] = []
    canned: list[SuggestedCanned] = []


class SuggestFor(Incoming):
    """The console asks for the suggestions of the chat on its screen: for a customer message as it arrives, or
    (``message_id`` left out) for the customer's last unanswered question when the chat opens."""

    ticket_id: RowId
    message_id: RowId | None = None


class Suggested(Payload):
    """What ``suggest`` answers: the set for that message (ranked once per message and agent; the stored one if
    it was), or None when there is nothing to suggest (small talk, the agent spoke last, the ranking failed)."""

    ok: bool = True
    suggestions: SuggestionsOut | None = None


class SuggestionUsed(Incoming):
    ticket_id: int
    suggestion_id: int
    kind: Literal["article", "canned"]
    ref: str = Field(min_length=1, max_length=128)  # the article id, or the canned response's id


class SuggestionSent(Incoming):
    ticket_id: int
    use_id: int
    message_id: int = Field(ge=1)  # the agent's message that went out with the inserted text in it


class SaveToKB(Incoming):
    ticket_id: int
    message_id: int = Field(ge=1)  # the agent's answer
    mode: Literal["draft", "examples"]  # a new draft article, or the question as an example of ``article_id``
    article_id: str | None = Field(default=None, max_length=128)
    question: str | None = Field(default=None, max_length=1000)  # default: the customer's message before it
    title: str | None = Field(default=None, max_length=200)


class SavedToKB(Payload):
    saved_id: int
    mode: str
    article_id: str
    version: int
    question: str


SUGGESTIONS = _event(
    "suggestions", SuggestionsOut, _A, _OUT, "KB articles and canned responses for the chat an agent just took."
)
SUGGEST = _event("suggest", SuggestFor, _A, _IN, "Suggestions for a customer message of the chat on my screen.")
SUGGESTION_USED = _event("suggestion_used", SuggestionUsed, _A, _IN, "I inserted a suggestion (metrics).")
SUGGESTION_SENT = _event("suggestion_sent", SuggestionSent, _A, _IN, "My message with an inserted suggestion went out.")
SUGGESTIONS_OF = _event("suggestions_of", TicketRef, _A, _IN, "The suggestions stored for my chat (after a reload).")
SAVE_TO_KB = _event("save_to_kb", SaveToKB, _A, _IN, "Save my answer to the KB: a draft article or new examples.")


def _fields(model: type[BaseModel]) -> str:
    if issubclass(model, RootModel):
        return "the session id (a bare string)"
    names = [name for name in model.model_fields]
    return ", ".join(f"`{n}`" for n in names) or "(none)"


def catalogue_table() -> str:
    """docs/events.md's table, made from the catalogue itself (tests/test_event_shapes.py keeps the doc in step)."""
    rows = ["| namespace | direction | event | payload | whose | what |", "|---|---|---|---|---|---|"]
    for e in sorted(CATALOGUE, key=lambda e: (e.namespace != CUSTOMER_NAMESPACE, e.direction is Direction.OUT)):
        arrow = "client → relay" if e.direction is Direction.IN else "relay → client"
        whose = "Rasa's" if e.rasa else "Warmline's addition"
        rows.append(
            f"| `{e.namespace}` | {arrow} | `{e.name}` | {e.model.__name__}: {_fields(e.model)} | {whose} | {e.doc} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(catalogue_table(), end="")
