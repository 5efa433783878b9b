"""The customer side of the relay: Rasa's socketio protocol on the default namespace, plus the human phase.

Every handler reads top to bottom: validate the payload, change state (``handoff.store`` / ``handoff.tickets``),
commit, and only then emit through the outbox, naming the recipients (``handoff.conversation``'s rooms). Where a
message goes is the conversation core's decision: to the bot in the bot phase, to the agent otherwise.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import HotPathWriter, WriteConnection, reading
from common.errors import BotUnavailable, InvalidPayload, InvalidRating, MessageTooLong, NoSession, WrongSession
from common.settings import Settings
from handoff import conversation, events, identity, origins, queues, store, telemetry, tickets
from handoff.bot_client import Bot, BotTurn
from handoff.bot_replies import bot_uttered, handoff_card_of, history_message, split_reply
from handoff.conversation import Route, chat_room
from handoff.guard import Handler, Registrar, parse, refuse, register
from handoff.handback import resume_bot
from handoff.models import AnyMessage, Conversation, Message
from handoff.origins import OriginNotAllowed
from handoff.outbox import Outbox
from handoff.overlap import Reading, let_emits_leave, while_storing
from handoff.ratelimit import Limiter
from handoff.throttle import Throttle
from handoff.views import AGENT_ONLY, summary

# What the bot says it cannot: the customer's way to a person while Rasa is down is this quick reply, which the
# relay itself understands (Rasa cannot read it then).
HUMAN_PAYLOAD = "/human"
GREETING_PAYLOAD = "/greet"
BOT_DOWN_TEXT = (
    "Sorry, the assistant is not reachable right now. Your message is saved. Would you like to talk to a person?"
)
BOT_DOWN_OFFER = [{"content_type": "text", "title": "Talk to a person", "payload": HUMAN_PAYLOAD}]


class CustomerSide:
    def __init__(
        self,
        sio: Registrar,
        outbox: Outbox,
        sessions: async_sessionmaker[AsyncSession],
        writer: HotPathWriter,
        bot: Bot,
        dispatcher: queues.Dispatcher,
        max_message_chars: int,
        sockets: SocketSessions,
        policy: CustomerPolicy,
        limiter: Limiter,
    ) -> None:
        self.sio = sio
        self.out = outbox
        self.sessions = sessions
        self.writer = writer
        self.bot = bot
        self.max_message_chars = max_message_chars
        self.dispatcher = dispatcher
        self.sockets = sockets
        self.policy = policy
        self.limiter = limiter
        self.addresses: dict[str, str] = {}  # sid -> client address, for the per-address limits
        # sid -> the chat's phase at this socket's last message: a hint only (the stored phase decides), so that in
        # the human phase Rasa is not asked to read every message (issue 15: it cost Rasa 8 ms of CPU each).
        self.last_phase: dict[str, str] = {}
        self.typing_throttle = Throttle()

    def register(self) -> None:
        self.sio.on("connect", self.connect, namespace=events.CUSTOMER_NAMESPACE)
        self.sio.on("disconnect", self.disconnect, namespace=events.CUSTOMER_NAMESPACE)
        handlers: list[tuple[events.Event[Any], Handler]] = [
            (events.SESSION_REQUEST, self.session_request),
            (events.USER_UTTERED, self.user_uttered),
            (events.RATING, self.rating),
            (events.CUSTOMER_TYPING, self.typing),
            (events.CUSTOMER_READ, self.read),
            (events.LEAVE_EMAIL, self.leave_email),
        ]
        register(self.sio, self.out, handlers, self.limit)

    async def connect(self, sid: str, environ: dict[str, Any], _auth: Any = None) -> None:
        """A page of a site that is not allowed is refused before any event (the widget says why)."""
        try:
            origins.check_socket(environ, self.policy.origins)
        except OriginNotAllowed as exc:
            raise refuse(exc) from None
        self.addresses[sid] = client_address(environ)

    async def disconnect(self, sid: str, _reason: Any = None) -> None:
        self.addresses.pop(sid, None)
        self.last_phase.pop(sid, None)

    async def limit(self, sid: str, event: events.Event[Any]) -> None:
        """Per connection and per client address; typing, read receipts and the rest share one budget."""
        limits = self.limiter.limits
        if event is events.USER_UTTERED:
            mine, address = limits.customer_message, limits.customer_message_address
        elif event is events.SESSION_REQUEST:
            mine, address = limits.session_request, limits.session_request_address
        else:
            mine, address = limits.customer_signal, limits.customer_signal_address
        family = event.name if event in (events.USER_UTTERED, events.SESSION_REQUEST) else "signal"
        await self.limiter.hit(mine, family, "connection", sid)
        await self.limiter.hit(address, family, "address", self.addresses.get(sid, "unknown"))

    async def session_request(self, sid: str, data: Any) -> dict[str, Any]:
        request = parse(events.SessionRequest, data)
        session_id = request.session_id or uuid.uuid4().hex
        customer = self.policy.customer(request.customData)
        async with self.sessions() as s, s.begin():
            known = await s.get(Conversation, session_id) if request.session_id else None
            if known is not None and not identity.same_person(known.customer or {}, customer):
                raise WrongSession()  # a signed-in user's chat resumes only for that user
            chat = await s.run_sync(store.open_conversation, session_id, customer)
            # The record travels with each message to Rasa (the handoff card shows it) without a read per message.
            await self.sockets.save(sid, session_id, dict(chat.customer or {}))
            # In the chat's room before its history is read: a message stored after the read reaches this socket
            # live (one stored just before may come both ways; clients keep one per message id), none falls between.
            await self.sockets.join(sid, chat_room(session_id))
            past = [m for m in await store.history(s, session_id) if m.sender not in AGENT_ONLY]
            ticket = await tickets.open_ticket_of(s, session_id) if chat.status == "queued" else None
            queued = await queues.status_of(s, ticket) if ticket is not None else None
        await self.out.emit(events.SESSION_CONFIRM, events.SessionConfirm(session_id), to=sid)
        history = events.HistoryPayload(
            session_id=session_id, status=chat.status, messages=[history_message(m) for m in past],
            agent_read_id=chat.agent_read_id,
        )  # fmt: skip
        await self.out.emit(events.HISTORY, history, to=sid)
        if queued is not None:  # a reload while waiting: show where they stand at once
            await self.out.emit(events.QUEUE_POSITION, queued, to=sid)
            if queued.availability != "open" and not (chat.customer or {}).get("email"):  # offer the form again
                ask = events.EmailRequest(
                    ticket_id=queued.ticket_id, reason=queued.availability, opens_at=queued.opens_at
                )
                await self.out.emit(events.EMAIL_REQUEST, ask, to=sid)
        return {"ok": True, "session_id": session_id}

    # --- user_uttered: validate -> store while the bot reads -> route by phase -> bot turn or agent -------------

    async def user_uttered(self, sid: str, data: Any) -> dict[str, Any]:
        started = time.perf_counter()
        uttered = self._validate(data)
        session_id, known = await self.sockets.chat_of(sid)
        if uttered.session_id not in (None, session_id):
            raise WrongSession()
        customer = self.policy.customer(uttered.customData)
        if not identity.same_person(known, customer) and customer is not None and customer.get("verified"):
            raise WrongSession()
        record = identity.merge(known, customer)
        for_bot = self.policy.for_bot(uttered.message)

        def store_it() -> Awaitable[tuple[store.StoredMessage, store.ConversationState, tickets.TicketRef | None]]:
            def work(
                s: WriteConnection,
            ) -> tuple[store.StoredMessage, store.ConversationState, tickets.TicketRef | None]:
                stored, chat = store.add_customer_message(s, session_id, uttered.message, uttered.client_id, customer)
                # Away from the bot, the agent's ticket is read in the same unit of work: no second round trip.
                ticket = tickets.open_ticket_in(s, session_id) if chat.status != conversation.Phase.BOT else None
                return stored, chat, ticket

            return self.writer.write(work)

        bot_reading: Reading[tuple[BotTurn | None, BotUnavailable | None]] | None = None
        if self.last_phase.get(sid, conversation.Phase.BOT) == conversation.Phase.BOT:
            (stored, chat, ticket), bot_reading = await while_storing(
                self._ask_bot(session_id, for_bot, record), store_it
            )
        else:  # with a person last time: most likely still, so Rasa is not asked for a reading nobody would use
            stored, chat, ticket = await store_it()
        phase, paused = chat.status, chat.bot_paused
        self.last_phase[sid] = phase
        ack = events.Ack(ok=True, message_id=stored.message.id, client_id=uttered.client_id)
        route = conversation.route_customer_message(phase, stored.created)
        if route is not Route.BOT and bot_reading is not None:
            bot_reading.drop()  # a paused Rasa only read it; nothing it might say is used
        if route is Route.DUPLICATE:
            return ack.model_copy(update={"duplicate": True}).model_dump(exclude_none=True)
        if route is Route.AGENT:
            await self._to_agent(session_id, stored.message, ticket)
            return ack.model_dump(exclude_none=True)
        turn, failure = await (bot_reading.result() if bot_reading else self._ask_bot(session_id, for_bot, record))
        if failure is None and conversation.must_resume_before_answering(phase, paused):
            # Rasa was still paused (resuming it at resolve failed): resume now, and let it read the message again.
            await resume_bot(self.sessions, self.bot, session_id)
            turn, failure = await self._ask_bot(session_id, for_bot, record)
        if failure is not None or turn is None:
            telemetry.bot_turn(time.perf_counter() - started, ok=False)
            return await self._bot_down(sid, session_id, uttered.message, ack, failure or BotUnavailable(), started)
        if await self._bot_turn(session_id, stored.message.id, turn, started):
            self._handed_over(sid)
        telemetry.bot_turn(time.perf_counter() - started)
        return ack.model_dump(exclude_none=True)

    def _handed_over(self, sid: str) -> None:
        """This socket's chat went to a person: its next message is theirs, so Rasa (paused) is not asked to read it.
        Not for a socket that has gone meanwhile (its entry was dropped at disconnect)."""
        if sid in self.last_phase:
            self.last_phase[sid] = conversation.Phase.QUEUED

    def _validate(self, data: Any) -> events.UserUttered:
        if not isinstance(data, dict):
            raise InvalidPayload("user_uttered needs an object with a 'message' string")
        if isinstance(data.get("message"), str) and len(data["message"]) > self.max_message_chars:
            raise MessageTooLong(f"Messages are limited to {self.max_message_chars} characters; nothing was sent.")
        return parse(events.UserUttered, data)

    async def _ask_bot(
        self, session_id: str, text: str, customer: dict[str, Any]
    ) -> tuple[BotTurn | None, BotUnavailable | None]:
        try:
            return await self.bot.send(session_id, text, {"customer": customer}), None
        except BotUnavailable as exc:
            return None, exc

    async def _to_agent(self, session_id: str, message: AnyMessage, ticket: tickets.TicketRef | None) -> None:
        """Human phase: pass the stored message to the seated agent, if one is seated yet. Its suggestions are the
        console's to ask for, for the chat on the agent's screen (handoff/copilot.py ``suggest``)."""
        if ticket is None:
            return
        room = chat_room(session_id)
        await self.out.emit(
            events.CHAT_MESSAGE, events.ChatMessage(ticket_id=ticket.id, message=history_message(message)), to=room
        )

    async def _bot_turn(self, session_id: str, message_id: int, turn: BotTurn, started: float) -> bool:
        """The bot's turn, stored and sent; True if it handed the chat to a person."""
        said = [split_reply(rasa_message) for rasa_message in turn.messages]
        if any(handoff_card_of(data) is not None for _, data in said):
            replies, opened = await self._open_ticket(session_id, said)
            await self._say(session_id, replies)
            if opened is not None:
                await self._announce_ticket(session_id, *opened, started)
            # The bot's reading annotates the customer's message, which is stored already: it follows the replies.
            await let_emits_leave()
            await store.set_parse(self.writer, message_id, turn.parse)
            return True
        # The common turn: the bot's answers and its reading, stored in one write before anyone sees them.
        stored = await store.add_replies(self.writer, session_id, said, reading=(message_id, turn.parse))
        await self._say(session_id, stored)
        return False

    async def _bot_down(
        self, sid: str, session_id: str, text: str, ack: events.Ack, failure: BotUnavailable, started: float
    ) -> dict[str, Any]:
        """Rasa did not answer. The message is stored (the ack says so); the customer is told at once and offered a
        person, and asking for one (the offer's quick reply) opens a ticket without the bot."""
        if text.strip() == HUMAN_PAYLOAD:
            card = {
                "reason": "bot_unavailable",
                "reason_text": "The assistant was down; the customer asked for a person.",
            }
            replies, opened = await self._open_ticket(session_id, [("", {"custom": {"handoff": card}})])
            await self._say(session_id, replies)
            if opened is not None:
                await self._announce_ticket(session_id, *opened, started)
            self._handed_over(sid)
            return ack.model_dump(exclude_none=True)
        payload = failure.payload(event=events.USER_UTTERED.name)
        await self.out.emit(events.RELAY_ERROR, events.ErrorPayload.model_validate(payload), to=sid)
        offer = await self.writer.write(
            lambda s: store.add_message(s, session_id, "system", BOT_DOWN_TEXT, data={"quick_replies": BOT_DOWN_OFFER})
        )
        await self._say(session_id, [offer.message])
        return ack.model_copy(update={"error": payload}).model_dump(exclude_none=True)

    async def _say(self, session_id: str, replies: Sequence[AnyMessage]) -> None:
        for reply in replies:
            for event in bot_uttered(reply):
                await self.out.emit(events.BOT_UTTERED, event, to=chat_room(session_id))

    async def _open_ticket(
        self, session_id: str, said: list[tuple[str, dict[str, Any] | None]]
    ) -> tuple[list[AnyMessage], tuple[events.TicketSummary, events.QueueStatus] | None]:
        """A turn that escalates: the handoff card becomes the ticket (agents only, never a message the customer
        sees), the conversation leaves the bot, and the customer is told where they stand, in one transaction."""
        replies: list[AnyMessage] = []
        opened: tuple[events.TicketSummary, events.QueueStatus] | None = None
        async with self.sessions() as s, s.begin():
            for reply_text, data in said:
                handoff_card = handoff_card_of(data)
                if handoff_card is None:
                    replies.append(
                        (await s.run_sync(store.add_message, session_id, "bot", reply_text, data=data)).message
                    )
                    continue
                chat = await s.get(Conversation, session_id)
                if chat is not None:  # the relay's record of the customer (verified or not) is the card's
                    handoff_card["customer"] = {**(handoff_card.get("customer") or {}), **chat.customer}
                    chat.bot_paused = True
                team = await queues.team_for_card(s, handoff_card.get("team"))
                ticket, created = await tickets.open_ticket(s, session_id, handoff_card, team=team)
                status = await queues.status_of(s, ticket)
                waiting = await s.run_sync(store.add_message, session_id, "system", queues.queue_text(status))
                replies.append(waiting.message)
                if created:
                    opened = (summary(ticket, chat, status.position, waiting.message.id), status)
        return replies, opened

    async def _announce_ticket(
        self, session_id: str, ticket: events.TicketSummary, status: events.QueueStatus, started: float
    ) -> None:
        await self.out.emit(events.QUEUE_POSITION, status, to=chat_room(session_id))
        if status.availability != "open":
            ask = events.EmailRequest(ticket_id=status.ticket_id, reason=status.availability, opens_at=status.opens_at)
            await self.out.emit(events.EMAIL_REQUEST, ask, to=chat_room(session_id))
        await self.out.emit(events.TICKET_WAITING, ticket, to=conversation.team_room(status.team))
        self.dispatcher.request(status.team)
        telemetry.escalation(ticket.reason, time.perf_counter() - started)
        telemetry.queue("queued", status.team)

    # --- the rest of the customer's events -------------------------------------------------------------------------

    async def rating(self, sid: str, data: Any) -> dict[str, Any]:
        session_id, _ = await self.sockets.chat_of(sid)
        rating = parse(events.Rating, data)
        async with self.sessions() as s, s.begin():
            if not await tickets.rate(s, rating.ticket_id, session_id, rating.score, rating.comment):
                raise InvalidRating()
        return {"ok": True}

    async def typing(self, sid: str, data: Any) -> dict[str, Any]:
        """The customer is typing: told to the seated agent only (the bot does not care, nor do other agents)."""
        req = parse(events.TypingIn, data)
        if not self.typing_throttle.allow(sid, req.typing):
            return {"ok": True, "throttled": True}
        session_id, _ = await self.sockets.chat_of(sid)
        async with reading(self.sessions) as s:
            ticket = await tickets.open_ticket_of(s, session_id)
        if ticket is None or ticket.status != "assigned":
            return {"ok": True}
        out = events.TypingOut(ticket_id=ticket.id, sender="customer", typing=req.typing)
        await self.out.emit(events.TYPING_TO_AGENT, out, to=chat_room(session_id))
        return {"ok": True}

    async def read(self, sid: str, data: Any) -> dict[str, Any]:
        """The customer has seen their chat up to ``message_id``; it only moves forward, agents are told."""
        req = parse(events.ReadIn, data)
        session_id, _ = await self.sockets.chat_of(sid)
        async with self.sessions() as s, s.begin():
            chat = await s.get(Conversation, session_id)
            message = await s.get(Message, req.message_id)
            if chat is None or message is None or message.conversation_id != session_id:
                raise InvalidPayload("message_id: not a message of this chat")
            moved = (chat.customer_read_id or 0) < req.message_id
            if moved:
                chat.customer_read_id = req.message_id
            ticket = await tickets.open_ticket_of(s, session_id) if moved else None
        if ticket is not None:
            out = events.ReadOut(ticket_id=ticket.id, reader="customer", message_id=req.message_id)
            await self.out.emit(events.READ_TO_AGENT, out, to=chat_room(session_id))
        return {"ok": True}

    async def leave_email(self, sid: str, data: Any) -> dict[str, Any]:
        """Nobody could come: the email goes on the customer's record and the open ticket, for a follow-up."""
        req = parse(events.LeaveEmail, data)
        session_id, _ = await self.sockets.chat_of(sid)
        async with self.sessions() as s, s.begin():
            await s.run_sync(store.open_conversation, session_id, {"email": req.email})
            thanks = f"Thanks! We'll write to {req.email} as soon as someone is available."
            note = await s.run_sync(store.add_message, session_id, "system", thanks)
            ticket = await tickets.open_ticket_of(s, session_id)
        await self._say(session_id, [note.message])
        if ticket is not None:
            chat = events.ChatMessage(ticket_id=ticket.id, message=history_message(note.message))
            await self.out.emit(events.CHAT_MESSAGE, chat, to=chat_room(session_id))
        return {"ok": True, "email": req.email}


@dataclass(frozen=True)
class CustomerPolicy:
    """What the operator decided about customers (settings): which sites may embed the chat, whether and how the
    customer's identity is verified, which widget init payloads mean "say hello"."""

    origins: frozenset[str] = frozenset()
    identity_secret: str | None = None
    identity_required: bool = False
    init_payloads: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> CustomerPolicy:
        return cls(
            origins=origins.parse_origins(settings.origins),
            identity_secret=settings.identity_secret.get_secret_value() if settings.identity_secret else None,
            identity_required=settings.identity_required,
            init_payloads=frozenset(p.strip() for p in settings.init_payloads.split(",") if p.strip()),
        )

    def customer(self, context: events.CustomerContext | None) -> dict[str, Any] | None:
        claimed = context.model_dump(exclude_none=True) if context else None
        return identity.resolve(claimed, self.identity_secret, self.identity_required)

    def for_bot(self, text: str) -> str:
        """A widget's init payload reaches Rasa as its greeting intent; everything else as typed."""
        return GREETING_PAYLOAD if text.strip() in self.init_payloads else text


def client_address(environ: dict[str, Any]) -> str:
    """The socket's client address as Sanic sees it (behind WARMLINE_PROXIES_COUNT proxies, the forwarded one)."""
    request = environ.get("sanic.request")
    address = (request.remote_addr or request.ip) if request is not None else environ.get("REMOTE_ADDR")
    return str(address or "unknown")


class SocketSessions:
    """What the relay remembers per customer socket: only its chat's id and the customer record, so any relay
    process can serve any message (everything else is in the database)."""

    def __init__(self, sio: Any) -> None:
        self._sio = sio

    async def save(self, sid: str, session_id: str, customer: dict[str, Any]) -> None:
        await self._sio.save_session(
            sid, {"session_id": session_id, "customer": customer}, namespace=events.CUSTOMER_NAMESPACE
        )

    async def join(self, sid: str, room: str) -> None:
        await self._sio.enter_room(sid, room, namespace=events.CUSTOMER_NAMESPACE)

    async def chat_of(self, sid: str) -> tuple[str, dict[str, Any]]:
        """This connection's conversation id and the customer record remembered at session_request."""
        socket_session = await self._sio.get_session(sid, namespace=events.CUSTOMER_NAMESPACE)
        session_id = socket_session.get("session_id") if socket_session else None
        if session_id is None:
            raise NoSession()
        return str(session_id), dict(socket_session.get("customer") or {})
