"""Customer feedback on bot-only chats: a 1-5 rating asked once, when the customer ends the chat or it goes idle.

A chat with a ticket is rated through its ticket (``rating`` after the agent resolves, ``handoff.tickets.rate``);
this is for chats no person took part in. One ``chat_ratings`` row per conversation: it is written when the rating
is asked (so it is asked at most once, across relay processes too: the primary key decides) and takes the score
once. A second rating is refused with ``already_rated`` and the first one stands (docs/reports.md).

Events on the customer namespace:
- ``end_chat`` (customer -> relay, ``{}``): the customer closed the chat. A bot-only chat not asked before gets
  ``rating_request`` ``{"ticket_id": null, "scope": "chat"}``.
- ``chat_rating`` (customer -> relay, ``{"score": 1..5, "comment"?}``): the answer.
- idle: every few seconds each relay process looks at the conversations whose page is open on it (its own
  sockets' rooms) and asks those quiet for ``chat_rating_idle_s``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import socketio
from sqlalchemy import case, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import utcnow
from common.db import reading
from common.errors import InvalidRating, RelayError
from common.settings import Settings
from handoff import events
from handoff.conversation import chat_room, conversation_of_room
from handoff.customer import SocketSessions
from handoff.guard import parse, register
from handoff.models import ChatRating, Conversation, Message, Ticket
from handoff.outbox import Outbox

log = logging.getLogger(__name__)

NS = events.CUSTOMER_NAMESPACE
IDLE_BATCH = 500  # conversations looked at per query of the idle sweep


class AlreadyRated(RelayError):
    status = 409
    code = "already_rated"
    message = "You have already rated this chat; thanks, your first rating is the one we keep."


def _has_ticket(conversation_id: Any) -> Any:
    return exists().where(Ticket.conversation_id == conversation_id)


async def ask(s: AsyncSession, conversation_id: str, because: str) -> bool:
    """Record that this bot-only chat is being asked for a rating; False if it was asked before, has a ticket (its
    ticket is rated instead) or the customer never wrote in it. The caller commits."""
    rateable = await s.scalar(
        select(Conversation.id).where(
            Conversation.id == conversation_id,
            ~_has_ticket(Conversation.id),
            exists().where(Message.conversation_id == Conversation.id, Message.sender == "customer"),
        )
    )
    if rateable is None:
        return False
    try:
        async with s.begin_nested():
            await s.execute(
                insert(ChatRating).values(conversation_id=conversation_id, asked_at=utcnow(), asked_because=because)
            )
    except IntegrityError:  # asked already (maybe by another relay process a moment ago)
        return False
    return True


async def rate_chat(s: AsyncSession, conversation_id: str, score: int, comment: str | None) -> None:
    """Store the rating of a bot-only chat once. Raises ``InvalidRating`` for a chat with a ticket or one the
    customer never wrote in, ``AlreadyRated`` for a second rating (the first stands). The caller commits."""
    if await s.scalar(select(_has_ticket(conversation_id))):
        raise InvalidRating("This chat was handled by a person: rate it from the rating under the agent's reply.")
    await ask(s, conversation_id, "customer")  # rated without being asked (no-op if it was asked)
    result = await s.execute(
        update(ChatRating)
        .where(ChatRating.conversation_id == conversation_id, ChatRating.score.is_(None))
        .values(score=score, comment=comment, rated_at=utcnow())
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return
    if await s.get(ChatRating, conversation_id) is None:
        raise InvalidRating("There is nothing to rate yet: write to the assistant first.")
    raise AlreadyRated()


async def idle_conversations(s: AsyncSession, ids: list[str], quiet_since: Any) -> list[str]:
    """Of ``ids``, the bot-phase chats with a customer message, no ticket, never asked, and no message after
    ``quiet_since``."""
    last = func.max(Message.created_at)
    query = (
        select(Message.conversation_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.conversation_id.in_(ids),
            Conversation.status == "bot",
            ~_has_ticket(Message.conversation_id),
            ~exists().where(ChatRating.conversation_id == Message.conversation_id),
        )
        .group_by(Message.conversation_id)
        .having(last < quiet_since, func.sum(case((Message.sender == "customer", 1), else_=0)) > 0)
    )
    return list((await s.execute(query)).scalars())


class FeedbackSide:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        outbox: Outbox,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        sockets: SocketSessions,
    ) -> None:
        self.sio = sio
        self.out = outbox
        self.sockets = sockets  # the customer socket's chat, as the customer side remembers it
        self.sessions = sessions
        self.idle_s = settings.chat_rating_idle_s
        self._sweeper: asyncio.Task[None] | None = None

    def register(self) -> None:
        register(self.sio, self.out, [(events.END_CHAT, self.end_chat), (events.CHAT_RATING, self.chat_rating)])
        if self.idle_s > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="chat-rating-idle")

    async def end_chat(self, sid: str, data: Any) -> dict[str, Any]:
        parse(events.Empty, data)
        session_id, _ = await self.sockets.chat_of(sid)
        async with self.sessions() as s, s.begin():
            asked = await ask(s, session_id, "ended")
        if asked:
            request = events.RatingRequest(scope="chat", because="ended")
            await self.out.emit(events.RATING_REQUEST, request, to=chat_room(session_id))
        return {"ok": True, "rating_requested": asked}

    async def chat_rating(self, sid: str, data: Any) -> dict[str, Any]:
        rating = parse(events.ChatRatingIn, data)
        session_id, _ = await self.sockets.chat_of(sid)
        async with self.sessions() as s, s.begin():
            await rate_chat(s, session_id, rating.score, rating.comment)
        return {"ok": True}

    def _open_conversations(self) -> list[str]:
        """Conversations with a customer socket on this process (their rooms: ``conversation.chat_room``)."""
        rooms = self.sio.manager.rooms.get(NS, {})
        return [chat_id for room, members in rooms.items() if members and (chat_id := conversation_of_room(room))]

    async def sweep(self) -> list[str]:
        """Ask every idle bot-only chat open on this process for a rating; returns the conversations asked."""
        asked: list[str] = []
        open_ids = self._open_conversations()
        quiet_since = utcnow() - timedelta(seconds=self.idle_s)
        for i in range(0, len(open_ids), IDLE_BATCH):
            async with reading(self.sessions) as s:
                idle = await idle_conversations(s, open_ids[i : i + IDLE_BATCH], quiet_since)
            for conversation_id in idle:
                async with self.sessions() as s, s.begin():
                    if not await ask(s, conversation_id, "idle"):
                        continue
                request = events.RatingRequest(scope="chat", because="idle")
                await self.out.emit(events.RATING_REQUEST, request, to=chat_room(conversation_id))
                asked.append(conversation_id)
        return asked

    async def _sweep_forever(self) -> None:
        every = max(1.0, min(30.0, self.idle_s / 4))
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed sweep is retried on the next round; the chat itself is unaffected
                log.exception("chat rating idle sweep failed")
