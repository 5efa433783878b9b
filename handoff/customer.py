"""The customer side of the relay: Rasa's socketio protocol on the default namespace, plus the human phase.

Each handler validates its payload, changes state through ``handoff.store`` / ``handoff.tickets``, commits, and
only then emits. While a ticket is open the bot never sees the customer's messages: they go to the agent.
"""

from __future__ import annotations

import uuid
from typing import Any

import socketio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoff import events, store, tickets
from handoff.agent import AgentSide, conversation_room, history_message, resume_bot, summary
from handoff.bot_client import BotClient
from handoff.bot_replies import message_event, split_reply
from handoff.errors import BotUnavailable, InvalidPayload, InvalidRating, MessageTooLong, NoSession, WrongSession
from handoff.guard import guard, validation_message
from handoff.models import Conversation, Message

NS = events.CUSTOMER_NAMESPACE


def queue_text(position: int) -> str:
    ahead = "You're next" if position == 1 else f"You're number {position} in the queue"
    return f"{ahead}; a person will join this chat shortly."


class CustomerSide:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        sessions: async_sessionmaker[AsyncSession],
        bot: BotClient,
        max_message_chars: int,
    ) -> None:
        self.sio = sio
        self.sessions = sessions
        self.bot = bot
        self.max_message_chars = max_message_chars

    def register(self) -> None:
        for name, handler in (
            (events.SESSION_REQUEST, self.session_request),
            (events.USER_UTTERED, self.user_uttered),
            (events.RATING, self.rating),
        ):
            self.sio.on(name, guard(self.sio, NS, name, handler), namespace=NS)

    async def _session_id(self, sid: str) -> str:
        socket_session = await self.sio.get_session(sid, namespace=NS)
        session_id = socket_session.get("session_id") if socket_session else None
        if session_id is None:
            raise NoSession()
        return str(session_id)

    async def session_request(self, sid: str, data: Any) -> dict[str, Any]:
        try:
            request = events.SessionRequest.model_validate(data if isinstance(data, dict) else {})
        except ValidationError as exc:
            raise InvalidPayload(validation_message(exc)) from exc
        session_id = request.session_id or uuid.uuid4().hex
        customer = request.customData.model_dump(exclude_none=True) if request.customData else None
        async with self.sessions() as s, s.begin():
            conversation = await store.open_conversation(s, session_id, customer)
            past = await store.history(s, session_id)
            status = conversation.status
        await self.sio.save_session(sid, {"session_id": session_id}, namespace=NS)
        await self.sio.enter_room(sid, session_id, namespace=NS)
        # Rasa's channel confirms with the bare id; widgets built for it expect exactly that.
        await self.sio.emit(events.SESSION_CONFIRM, session_id, to=sid, namespace=NS)
        history = events.HistoryPayload(
            session_id=session_id, status=status, messages=[history_message(m) for m in past]
        )
        await self.sio.emit(events.HISTORY, history.model_dump(), to=sid, namespace=NS)
        return {"ok": True, "session_id": session_id}

    async def user_uttered(self, sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise InvalidPayload("user_uttered needs an object with a 'message' string")
        if isinstance(data.get("message"), str) and len(data["message"]) > self.max_message_chars:
            raise MessageTooLong(f"Messages are limited to {self.max_message_chars} characters; nothing was sent.")
        try:
            uttered = events.UserUttered.model_validate(data)
        except ValidationError as exc:
            raise InvalidPayload(validation_message(exc)) from exc
        session_id = await self._session_id(sid)
        if uttered.session_id not in (None, session_id):
            raise WrongSession()
        customer = uttered.customData.model_dump(exclude_none=True) if uttered.customData else None

        async with self.sessions() as s, s.begin():
            conversation = await store.open_conversation(s, session_id, customer)
            stored = await store.add_message(s, session_id, "customer", uttered.message, client_id=uttered.client_id)
            status, paused, record = conversation.status, conversation.bot_paused, dict(conversation.customer)
            ticket = await tickets.open_ticket_of(s, session_id) if status != "bot" else None
        ack = events.Ack(ok=True, message_id=stored.message.id, client_id=uttered.client_id)
        if not stored.created:
            return ack.model_copy(update={"duplicate": True}).model_dump(exclude_none=True)
        if status != "bot":
            if ticket is not None:
                chat = events.ChatMessage(ticket_id=ticket.id, message=history_message(stored.message))
                await self.sio.emit(
                    events.CHAT_MESSAGE, chat.model_dump(), room=conversation_room(session_id),
                    namespace=events.AGENT_NAMESPACE,
                )  # fmt: skip
            return ack.model_dump(exclude_none=True)
        try:
            if paused:
                await resume_bot(self.sessions, self.bot, session_id)
            await self._bot_turn(session_id, stored.message.id, uttered.message, record)
        except BotUnavailable as exc:
            # The message is stored (the ack says so); the customer is told the bot could not answer it.
            payload = exc.payload(event=events.USER_UTTERED)
            await self.sio.emit(events.RELAY_ERROR, payload, to=sid, namespace=NS)
            return ack.model_copy(update={"error": payload}).model_dump(exclude_none=True)
        return ack.model_dump(exclude_none=True)

    async def _bot_turn(self, session_id: str, message_id: int, text: str, customer: dict[str, Any]) -> None:
        turn = await self.bot.send(session_id, text, {"customer": customer})
        replies: list[Message] = []
        opened = None
        async with self.sessions() as s, s.begin():
            await store.set_parse(s, message_id, turn.parse)
            for rasa_message in turn.messages:
                reply_text, data = split_reply(rasa_message)
                handoff_card = (data or {}).get("custom", {}).get("handoff") if data else None
                if isinstance(handoff_card, dict):
                    # The card is for agents only: it becomes the ticket, never a message the customer sees.
                    ticket, created = await tickets.open_ticket(s, session_id, handoff_card)
                    conversation = await s.get(Conversation, session_id)
                    if conversation is not None:
                        conversation.bot_paused = True
                    position = await tickets.queue_position(s, ticket)
                    waiting = await store.add_message(s, session_id, "system", queue_text(position))
                    replies.append(waiting.message)
                    if created:
                        opened = (summary(ticket, conversation, position), position)
                    continue
                replies.append((await store.add_message(s, session_id, "bot", reply_text, data=data)).message)
        for reply in replies:
            await self.sio.emit(events.BOT_UTTERED, message_event(reply), room=session_id, namespace=NS)
        if opened is not None:
            ticket_summary, position = opened
            await self.sio.emit(
                events.QUEUE_POSITION, {"ticket_id": ticket_summary.ticket_id, "position": position},
                room=session_id, namespace=NS,
            )  # fmt: skip
            await self.sio.emit(
                events.TICKET_WAITING, ticket_summary.model_dump(), room=events.AGENTS_ROOM,
                namespace=events.AGENT_NAMESPACE,
            )  # fmt: skip

    async def rating(self, sid: str, data: Any) -> dict[str, Any]:
        session_id = await self._session_id(sid)
        try:
            rating = events.Rating.model_validate(data if isinstance(data, dict) else {})
        except ValidationError as exc:
            raise InvalidPayload(validation_message(exc)) from exc
        async with self.sessions() as s, s.begin():
            if not await tickets.rate(s, rating.ticket_id, session_id, rating.score, rating.comment):
                raise InvalidRating()
        return {"ok": True}
