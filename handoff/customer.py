"""The customer side of the relay: Rasa's socketio protocol on the default namespace, plus the human phase.

Each handler validates its payload, changes state through ``handoff.store`` / ``handoff.tickets``, commits, and
only then emits. While a ticket is open the bot never sees the customer's messages: they go to the agent.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import socketio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import HotPathWriter, reading
from common.errors import (
    BotUnavailable,
    InvalidPayload,
    InvalidRating,
    MessageTooLong,
    NoSession,
    WrongSession,
)
from handoff import events, queues, store, tickets
from handoff.agent import conversation_room, resume_bot
from handoff.bot_client import BotClient, BotTurn
from handoff.bot_replies import handoff_card_of, message_event, split_reply
from handoff.guard import guard, parse
from handoff.models import Conversation, Message
from handoff.throttle import Throttle
from handoff.views import AGENT_ONLY, history_message, summary

NS = events.CUSTOMER_NAMESPACE


class CustomerSide:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        sessions: async_sessionmaker[AsyncSession],
        writer: HotPathWriter,
        bot: BotClient,
        dispatcher: queues.Dispatcher,
        max_message_chars: int,
    ) -> None:
        self.sio = sio
        self.sessions = sessions
        self.writer = writer
        self.bot = bot
        self.max_message_chars = max_message_chars
        self.dispatcher = dispatcher
        self.typing_throttle = Throttle()
        self._unused: set[asyncio.Task[Any]] = set()

    def register(self) -> None:
        for name, handler in (
            (events.SESSION_REQUEST, self.session_request),
            (events.USER_UTTERED, self.user_uttered),
            (events.RATING, self.rating),
            (events.TYPING, self.typing),
            (events.READ, self.read),
            (events.LEAVE_EMAIL, self.leave_email),
        ):
            self.sio.on(name, guard(self.sio, NS, name, handler), namespace=NS)

    async def _session_id(self, sid: str) -> str:
        return (await self._socket_session(sid))[0]

    async def _socket_session(self, sid: str) -> tuple[str, dict[str, Any]]:
        """This connection's conversation id and the customer record remembered at session_request."""
        socket_session = await self.sio.get_session(sid, namespace=NS)
        session_id = socket_session.get("session_id") if socket_session else None
        if session_id is None:
            raise NoSession()
        return str(session_id), dict(socket_session.get("customer") or {})

    async def session_request(self, sid: str, data: Any) -> dict[str, Any]:
        request: events.SessionRequest = parse(events.SessionRequest, data)
        session_id = request.session_id or uuid.uuid4().hex
        customer = request.customData.model_dump(exclude_none=True) if request.customData else None
        async with self.sessions() as s, s.begin():
            conversation = await s.run_sync(store.open_conversation, session_id, customer)
            past = [m for m in await store.history(s, session_id) if m.sender not in AGENT_ONLY]
            status, agent_read_id = conversation.status, conversation.agent_read_id
            has_email = bool((conversation.customer or {}).get("email"))
            ticket = await tickets.open_ticket_of(s, session_id) if status == "queued" else None
            queued = await queues.status_of(s, ticket) if ticket is not None else None
        # The record travels with each message to Rasa (the handoff card shows it) without a read per message.
        known = dict(conversation.customer or {})
        await self.sio.save_session(sid, {"session_id": session_id, "customer": known}, namespace=NS)
        await self.sio.enter_room(sid, session_id, namespace=NS)
        # Rasa's channel confirms with the bare id; widgets built for it expect exactly that.
        await self.sio.emit(events.SESSION_CONFIRM, session_id, to=sid, namespace=NS)
        history = events.HistoryPayload(
            session_id=session_id, status=status, messages=[history_message(m) for m in past],
            agent_read_id=agent_read_id,
        )  # fmt: skip
        await self.sio.emit(events.HISTORY, history.model_dump(), to=sid, namespace=NS)
        if queued is not None:  # a reload while waiting: show where they stand at once
            await self.sio.emit(events.QUEUE_POSITION, queued.model_dump(), to=sid, namespace=NS)
            if queued.availability != "open" and not has_email:  # and offer the email form again
                ask = events.EmailRequest(
                    ticket_id=queued.ticket_id, reason=queued.availability, opens_at=queued.opens_at
                )
                await self.sio.emit(events.EMAIL_REQUEST, ask.model_dump(), to=sid, namespace=NS)
        return {"ok": True, "session_id": session_id}

    async def user_uttered(self, sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise InvalidPayload("user_uttered needs an object with a 'message' string")
        if isinstance(data.get("message"), str) and len(data["message"]) > self.max_message_chars:
            raise MessageTooLong(f"Messages are limited to {self.max_message_chars} characters; nothing was sent.")
        uttered: events.UserUttered = parse(events.UserUttered, data)
        session_id, known_customer = await self._socket_session(sid)
        if uttered.session_id not in (None, session_id):
            raise WrongSession()
        customer = uttered.customData.model_dump(exclude_none=True) if uttered.customData else None

        record = {**known_customer, **(customer or {})}
        # Rasa reads the message while the relay stores it and learns the conversation's phase. Nothing is emitted
        # before both are done; in the human phase (Rasa is paused then) or for a resend, the reading is dropped.
        asking = asyncio.create_task(self._ask_bot(session_id, uttered.message, record))
        # The store holds the event loop while it runs (see HotPathWriter), so the request to Rasa leaves first and
        # Rasa works meanwhile: aiohttp (on Python 3.11) writes it from a task it starts in the asking task's first
        # step, so two turns of the loop. Only an ordering hint: if the request needs a new connection, it leaves
        # after the store, a little later.
        for _ in range(2):
            await asyncio.sleep(0)
        try:
            stored, phase, paused = await self._store(session_id, uttered, customer)
        except BaseException:
            asking.cancel()
            raise
        ack = events.Ack(ok=True, message_id=stored.message.id, client_id=uttered.client_id)
        if not stored.created or phase != "bot":
            # Rasa's reading is not used; the task finishes on its own (held here so it is not collected early).
            self._unused.add(asking)
            asking.add_done_callback(self._unused.discard)
        if not stored.created:
            return ack.model_copy(update={"duplicate": True}).model_dump(exclude_none=True)
        if phase != "bot":
            await self._to_agent(session_id, stored.message)
            return ack.model_dump(exclude_none=True)
        turn, failure = await asking
        if paused and failure is None:
            # Rasa was still paused (resuming it at resolve failed): resume now, and let it read the message again.
            await resume_bot(self.sessions, self.bot, session_id)
            turn, failure = await self._ask_bot(session_id, uttered.message, record)
        if failure is not None or turn is None:
            # The message is stored (the ack says so); the customer is told the bot could not answer it.
            payload = (failure or BotUnavailable()).payload(event=events.USER_UTTERED)
            await self.sio.emit(events.RELAY_ERROR, payload, to=sid, namespace=NS)
            return ack.model_copy(update={"error": payload}).model_dump(exclude_none=True)
        await self._bot_turn(session_id, stored.message.id, turn)
        return ack.model_dump(exclude_none=True)

    async def _ask_bot(
        self, session_id: str, text: str, customer: dict[str, Any]
    ) -> tuple[BotTurn | None, BotUnavailable | None]:
        try:
            return await self.bot.send(session_id, text, {"customer": customer}), None
        except BotUnavailable as exc:
            return None, exc

    async def _store(
        self, session_id: str, uttered: events.UserUttered, customer: dict[str, Any] | None
    ) -> tuple[store.StoredMessage, str, bool]:
        """Store the customer's message once; returns it with the conversation's phase and whether Rasa is paused.

        It runs while Rasa reads the message, on the event loop's thread where the database allows (see
        ``HotPathWriter``), so that it takes no CPU from Rasa beyond its own few hundred microseconds."""
        return await self.writer.write(
            lambda s: store.add_customer_message(s, session_id, uttered.message, uttered.client_id, customer)
        )

    async def _to_agent(self, session_id: str, message: Message) -> None:
        """Human phase: pass the stored message to the seated agent, if one is seated yet."""
        async with reading(self.sessions) as s:
            ticket = await tickets.open_ticket_of(s, session_id)
        if ticket is None:
            return
        chat = events.ChatMessage(ticket_id=ticket.id, message=history_message(message))
        room = conversation_room(session_id)
        await self.sio.emit(events.CHAT_MESSAGE, chat.model_dump(), room=room, namespace=events.AGENT_NAMESPACE)
        stop = events.TypingOut(ticket_id=ticket.id, sender="customer", typing=False)
        await self.sio.emit(events.TYPING, stop.model_dump(), room=room, namespace=events.AGENT_NAMESPACE)

    async def _bot_turn(self, session_id: str, message_id: int, turn: BotTurn) -> None:
        said = [split_reply(rasa_message) for rasa_message in turn.messages]
        opened: tuple[events.TicketSummary, events.QueueStatus] | None = None
        if any(handoff_card_of(data) is not None for _, data in said):
            replies, opened = await self._open_ticket(session_id, said)
            await self._say(session_id, replies)
        else:  # the common turn: the bot's answers, stored in one statement before anyone sees them
            await self._say(session_id, await store.add_replies(self.writer, session_id, said))
        if opened is not None:
            ticket_summary, status = opened
            await self.sio.emit(events.QUEUE_POSITION, status.model_dump(), room=session_id, namespace=NS)
            if status.availability != "open":
                ask = events.EmailRequest(
                    ticket_id=status.ticket_id, reason=status.availability, opens_at=status.opens_at
                )
                await self.sio.emit(events.EMAIL_REQUEST, ask.model_dump(), room=session_id, namespace=NS)
            await self.sio.emit(
                events.TICKET_WAITING, ticket_summary.model_dump(), room=events.team_room(status.team),
                namespace=events.AGENT_NAMESPACE,
            )  # fmt: skip
            self.dispatcher.request(status.team)
        # The bot's reading annotates the customer's message, which is stored already: it can follow the reply, once
        # the reply has left (emit only queues it; the store below runs on this thread without yielding).
        await asyncio.sleep(0)
        await store.set_parse(self.writer, message_id, turn.parse)

    async def _say(self, session_id: str, replies: list[Message]) -> None:
        for reply in replies:
            await self.sio.emit(events.BOT_UTTERED, message_event(reply), room=session_id, namespace=NS)

    async def _open_ticket(
        self, session_id: str, said: list[tuple[str, dict[str, Any] | None]]
    ) -> tuple[list[Message], tuple[events.TicketSummary, events.QueueStatus] | None]:
        """A turn that escalates: the handoff card becomes the ticket (agents only, never a message the customer
        sees), the conversation leaves the bot, and the customer is told where they stand, in one transaction."""
        replies: list[Message] = []
        opened: tuple[events.TicketSummary, events.QueueStatus] | None = None
        async with self.sessions() as s, s.begin():
            for reply_text, data in said:
                handoff_card = handoff_card_of(data)
                if handoff_card is None:
                    replies.append(
                        (await s.run_sync(store.add_message, session_id, "bot", reply_text, data=data)).message
                    )
                    continue
                conversation = await s.get(Conversation, session_id)
                if conversation is not None:  # what the relay knows of the customer completes the bot's card
                    handoff_card["customer"] = {**conversation.customer, **(handoff_card.get("customer") or {})}
                    conversation.bot_paused = True
                team = await queues.team_for_card(s, handoff_card.get("team"))
                ticket, created = await tickets.open_ticket(s, session_id, handoff_card, team=team)
                status = await queues.status_of(s, ticket)
                waiting = await s.run_sync(store.add_message, session_id, "system", queues.queue_text(status))
                replies.append(waiting.message)
                if created:
                    opened = (summary(ticket, conversation, status.position), status)
        return replies, opened

    async def rating(self, sid: str, data: Any) -> dict[str, Any]:
        session_id = await self._session_id(sid)
        rating: events.Rating = parse(events.Rating, data)
        async with self.sessions() as s, s.begin():
            if not await tickets.rate(s, rating.ticket_id, session_id, rating.score, rating.comment):
                raise InvalidRating()
        return {"ok": True}

    async def typing(self, sid: str, data: Any) -> dict[str, Any]:
        """The customer is typing: told to the seated agent only (the bot does not care, nor do other agents)."""
        req: events.TypingIn = parse(events.TypingIn, data)
        if not self.typing_throttle.allow(sid, req.typing):
            return {"ok": True, "throttled": True}
        session_id = await self._session_id(sid)
        async with reading(self.sessions) as s:
            ticket = await tickets.open_ticket_of(s, session_id)
        if ticket is None or ticket.status != "assigned":
            return {"ok": True}
        out = events.TypingOut(ticket_id=ticket.id, sender="customer", typing=req.typing)
        await self.sio.emit(
            events.TYPING, out.model_dump(), room=conversation_room(session_id), namespace=events.AGENT_NAMESPACE
        )
        return {"ok": True}

    async def read(self, sid: str, data: Any) -> dict[str, Any]:
        """The customer has seen their chat up to ``message_id``; it only moves forward, agents are told."""
        req: events.ReadIn = parse(events.ReadIn, data)
        session_id = await self._session_id(sid)
        async with self.sessions() as s, s.begin():
            conversation = await s.get(Conversation, session_id)
            message = await s.get(Message, req.message_id)
            if conversation is None or message is None or message.conversation_id != session_id:
                raise InvalidPayload("message_id: not a message of this chat")
            moved = (conversation.customer_read_id or 0) < req.message_id
            if moved:
                conversation.customer_read_id = req.message_id
            ticket = await tickets.open_ticket_of(s, session_id) if moved else None
        if ticket is not None:
            out = events.ReadOut(ticket_id=ticket.id, reader="customer", message_id=req.message_id)
            await self.sio.emit(
                events.READ, out.model_dump(), room=conversation_room(session_id), namespace=events.AGENT_NAMESPACE
            )
        return {"ok": True}

    async def leave_email(self, sid: str, data: Any) -> dict[str, Any]:
        """Nobody could come: the email goes on the customer's record and the open ticket, for a follow-up."""
        req: events.LeaveEmail = parse(events.LeaveEmail, data)
        session_id = await self._session_id(sid)
        async with self.sessions() as s, s.begin():
            await s.run_sync(store.open_conversation, session_id, {"email": req.email})
            thanks = f"Thanks! We'll write to {req.email} as soon as someone is available."
            note = await s.run_sync(store.add_message, session_id, "system", thanks)
            ticket = await tickets.open_ticket_of(s, session_id)
        await self.sio.emit(events.BOT_UTTERED, message_event(note.message), room=session_id, namespace=NS)
        if ticket is not None:
            chat = events.ChatMessage(ticket_id=ticket.id, message=history_message(note.message))
            await self.sio.emit(
                events.CHAT_MESSAGE,
                chat.model_dump(),
                room=conversation_room(session_id),
                namespace=events.AGENT_NAMESPACE,
            )
        return {"ok": True, "email": req.email}
