"""The agent side of the relay (namespace ``/agent``): presence, the queue, accepting, chatting, resolving.

Agents authenticate over REST (``POST /api/agent/login``) and connect with ``auth={"token": ...}``; a socket
without a valid token is refused before any handler runs. The console's other actions (transfer, typing, read
receipts, canned responses, KB search, the customer's record) are in ``handoff.console``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import socketio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from common.db import HotPathWriter, WriteConnection, orm_session, reading
from common.errors import BadToken, NotYourTicket, TicketUnavailable
from handoff import access, events, origins, queues, store, teams, telemetry, tickets
from handoff.auth import TOKEN_IDLE, slide_later, token_state
from handoff.bot_client import Bot
from handoff.bot_replies import bot_uttered, history_message
from handoff.conversation import AGENTS_ROOM, agent_room, chat_room, team_room
from handoff.guard import Gate, Handler, parse, refuse, register
from handoff.handback import resume_bot
from handoff.models import Agent, Conversation, Ticket
from handoff.origins import OriginNotAllowed
from handoff.outbox import Outbox
from handoff.views import summary

if TYPE_CHECKING:
    from handoff.copilot import Copilot

log = logging.getLogger(__name__)

NS = events.AGENT_NAMESPACE


class AgentSide:
    copilot: Copilot | None = None  # handoff/copilot.py, set by handoff.app

    def __init__(
        self,
        sio: socketio.AsyncServer,
        outbox: Outbox,
        sessions: async_sessionmaker[AsyncSession],
        writer: HotPathWriter,
        bot: Bot,
        dispatcher: queues.Dispatcher,
        allowed_origins: frozenset[str],
        gate: Gate | None = None,
        token_idle: timedelta = TOKEN_IDLE,
    ) -> None:
        self.gate = gate
        self.allowed_origins = allowed_origins
        self.token_idle = token_idle
        self.sio = sio
        self.out = outbox
        self.sessions = sessions
        self.writer = writer
        self.bot = bot
        self.dispatcher = dispatcher

    def register(self) -> None:
        self.sio.on("connect", self.connect, namespace=NS)
        self.sio.on("disconnect", self.disconnect, namespace=NS)
        handlers: list[tuple[events.Event[Any], Handler]] = [
            (events.SYNC, self.sync),
            (events.ACCEPT, self.accept),
            (events.AGENT_MESSAGE, self.agent_message),
            (events.RESOLVE, self.resolve),
            (events.PRESENCE, self.presence),
        ]
        register(self.sio, self.out, handlers, self.gate)

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            origins.check_socket(environ, self.allowed_origins)
        except OriginNotAllowed as exc:
            raise refuse(exc) from None
        token = auth.get("token") if isinstance(auth, dict) else None
        agent: Agent | None = None
        if isinstance(token, str) and token:
            async with self.sessions() as s, s.begin():
                agent, due = await token_state(s, token, self.token_idle)
                if agent is not None and due:
                    slide_later(self.sessions, token, self.token_idle)
                if agent is not None and access.may_use_console(agent.role):
                    if agent.presence == "offline":  # connecting means working; someone "away" stays away
                        agent.presence = "online"
                        telemetry.presence("online")
                    working = await self._queues_of(s, agent)
        if agent is None:
            raise refuse(BadToken())
        if not access.may_use_console(agent.role):
            raise refuse(access.ConsoleForbidden())
        await self.sio.save_session(sid, {"agent_id": agent.id, "name": agent.name, "role": agent.role}, namespace=NS)
        for room in (AGENTS_ROOM, agent_room(agent.id), *(team_room(t) for t in working)):
            await self.sio.enter_room(sid, room, namespace=NS)
        for team in working:
            self.dispatcher.request(team)

    async def disconnect(self, sid: str, _reason: Any = None) -> None:
        try:
            await self._went_away(sid)
        except Exception:  # no guard here (there is no one to tell); a failed refresh only delays an offer
            log.exception("presence update after disconnect failed")

    async def _went_away(self, sid: str) -> None:
        session = await self.sio.get_session(sid, namespace=NS)
        if not session:
            return
        agent_id = int(session["agent_id"])
        # Other tabs of this agent on this process keep them online. (Across processes this is best effort: a
        # process only knows its own sockets; the agent's next connect or presence change corrects it.)
        others = [p for p, _ in self.sio.manager.get_participants(NS, agent_room(agent_id)) if p != sid]
        if others:
            return
        telemetry.presence("offline")
        async with self.sessions() as s, s.begin():
            await teams.set_presence(s, agent_id, "offline")
            working = await teams.working_teams(s, agent_id)
        for team in working:
            self.dispatcher.request(team)

    async def _me(self, sid: str) -> tuple[int, str]:
        session = await self.sio.get_session(sid, namespace=NS)
        return int(session["agent_id"]), str(session["name"])

    @staticmethod
    def _queues_in(s: Session, agent: Agent) -> set[str]:
        """The queues an agent works: their teams' (the default team's if none); every team's for an admin."""
        if agent.role == "admin":
            return {t.name for t in teams.all_teams_in(s)}
        return teams.working_teams_in(s, agent.id)

    async def _queues_of(self, s: AsyncSession, agent: Agent) -> set[str]:
        return await s.run_sync(self._queues_in, agent)

    @staticmethod
    def _detail_in(s: Session, ticket: Ticket) -> events.TicketDetail:
        conversation = s.get(Conversation, ticket.conversation_id)
        messages = store.history_in(s, ticket.conversation_id)
        return events.TicketDetail(
            ticket=summary(ticket, conversation), card=ticket.card, messages=[history_message(m) for m in messages]
        )

    async def detail(self, s: AsyncSession, ticket: Ticket) -> events.TicketDetail:
        return await s.run_sync(self._detail_in, ticket)

    async def sync(self, sid: str, _data: Any) -> dict[str, Any]:
        """The queue of this agent's teams and their open chats (with transcripts): what a (re)connecting console needs."""
        agent_id, name = await self._me(sid)
        async with reading(self.sessions) as s:
            agent = await s.get(Agent, agent_id)
            working = await self._queues_of(s, agent) if agent else set()
            default = (await teams.default_team(s)).name
            queue = []
            waiting = await tickets.waiting(s, working, unrouted=default in working)
            last_ids = await store.last_message_ids(s, [t.conversation_id for t in waiting])
            for ticket in waiting:
                position = await tickets.queue_position(s, ticket)
                conversation = await s.get(Conversation, ticket.conversation_id)
                queue.append(summary(ticket, conversation, position, last_ids[ticket.conversation_id]))
            joined = [t.conversation_id for t in await tickets.assigned_to(s, agent_id)]
        # Into the chats' rooms before their transcripts are read: a message stored in between then arrives live
        # (one stored just before may arrive both ways; the console keeps one per message id). Read first, it would
        # be in neither (seen in the relay-restart fault test, tests/test_faults_processes.py).
        for conversation_id in joined:
            await self.sio.enter_room(sid, chat_room(conversation_id), namespace=NS)
        async with reading(self.sessions) as s:
            chats = [await self.detail(s, t) for t in await tickets.assigned_to(s, agent_id)]
        for chat in chats:  # one given to this agent between the two reads
            if chat.ticket.conversation_id not in joined:
                await self.sio.enter_room(sid, chat_room(chat.ticket.conversation_id), namespace=NS)
        for team in working:  # memberships may have changed since connect (an admin edited them)
            await self.sio.enter_room(sid, team_room(team), namespace=NS)
        return {
            "ok": True,
            "agent": {
                "id": agent_id, "name": name, "role": agent.role if agent else "agent",
                "presence": agent.presence if agent else "offline", "capacity": agent.capacity if agent else 0,
                "teams": sorted(working),
            },
            "queue": [q.model_dump() for q in queue],
            "chats": [c.model_dump() for c in chats],
        }  # fmt: skip

    async def presence(self, sid: str, data: Any) -> dict[str, Any]:
        wanted = parse(events.PresenceIn, data)
        agent_id, _ = await self._me(sid)
        async with self.sessions() as s, s.begin():
            await teams.set_presence(s, agent_id, wanted.presence)
            working = await teams.working_teams(s, agent_id)
        telemetry.presence(wanted.presence)
        for team in working:
            self.dispatcher.request(team)
        return {"ok": True, "presence": wanted.presence}

    async def accept(self, sid: str, data: Any) -> dict[str, Any]:
        ref = parse(events.TicketRef, data)
        agent_id, name = await self._me(sid)

        def seat(conn: WriteConnection) -> tuple[Ticket, store.StoredMessage, events.TicketDetail]:
            # One unit of work on the hot-path writer (atomic): on SQLite it runs on the loop's thread in about a
            # millisecond; as an async transaction its ten statements each waited for aiosqlite's thread, and under
            # load for a core (accept p99 76-108 ms at 70 % of the bot's capacity, docs/benchmarks.md, scale-out b).
            with orm_session(conn) as s:
                return seat_in(s)

        def seat_in(s: Session) -> tuple[Ticket, store.StoredMessage, events.TicketDetail]:
            me, queued = s.get(Agent, agent_id), s.get(Ticket, ref.ticket_id)
            if me is None or queued is None or queued.status != "queued":
                raise TicketUnavailable()
            access.check_queue(me.role, self._queues_in(s, me), queues.ticket_team(queued))
            room_left = access.check_room(me.role, tickets.active_counts_in(s).get(agent_id, 0), me.capacity)
            ticket = tickets.accept_in(s, ref.ticket_id, agent_id)
            if ticket is None:
                raise TicketUnavailable()
            if room_left is access.Room.OVERRIDE:  # recorded where every agent of the chat will see it
                store.add_message(
                    s, ticket.conversation_id, "note",
                    f"{name} (admin) took this chat over their capacity of {me.capacity}.", data={"agent_name": name},
                )  # fmt: skip
            joined = store.add_message(s, ticket.conversation_id, "system", f"{name} joined the chat.")
            return ticket, joined, self._detail_in(s, ticket)

        ticket, joined, detail = await self.writer.write(seat, atomic=True)
        room = chat_room(ticket.conversation_id)
        await self.sio.enter_room(sid, room, namespace=NS)
        taken = events.TicketTaken(ticket_id=ticket.id, as_of_message_id=joined.message.id)
        await self.out.emit(events.TICKET_TAKEN, taken, to=AGENTS_ROOM)
        for event in bot_uttered(joined.message, agent_name=name):
            await self.out.emit(events.BOT_UTTERED, event, to=room)
        self.dispatcher.request(queues.ticket_team(ticket))  # everyone behind moves up
        telemetry.queue("accepted", queues.ticket_team(ticket))
        if ticket.accepted_at is not None:
            telemetry.seated(queues.ticket_team(ticket), tickets.seconds_between(ticket.created_at, ticket.accepted_at))
        if self.copilot is not None:  # the suggestions for the last unanswered question follow the card at once
            self.copilot.after_handoff(ticket.id, agent_id)
        return {"ok": True, "ticket": detail.model_dump()}

    async def agent_message(self, sid: str, data: Any) -> dict[str, Any]:
        says = parse(events.AgentSays, data)
        agent_id, name = await self._me(sid)

        def store_it(s: WriteConnection) -> tuple[tickets.TicketRef, store.StoredMessage]:
            # Every human-phase message passes here: the hot-path writer (no thread hops on SQLite, nothing held
            # across awaits), and the seat check and the insert are each fine on their own.
            ticket = tickets.ticket_in(s, says.ticket_id)
            if ticket is None or ticket.agent_id != agent_id or ticket.status != "assigned":
                raise NotYourTicket()
            said = store.add_message(
                s, ticket.conversation_id, "agent", says.text, client_id=says.client_id, data={"agent_name": name}
            )
            return ticket, said

        ticket, stored = await self.writer.write(store_it)
        said = history_message(stored.message)
        if stored.created:
            room = chat_room(ticket.conversation_id)
            for event in bot_uttered(stored.message):
                await self.out.emit(events.BOT_UTTERED, event, to=room)
            # The sender has it in the ack; another tab of the agent's, or an admin watching, gets it here.
            await self.out.emit(
                events.CHAT_MESSAGE, events.ChatMessage(ticket_id=ticket.id, message=said), to=room, skip=sid
            )
        ack = events.AgentSaid(
            ticket_id=ticket.id,
            message_id=stored.message.id,
            client_id=says.client_id,
            duplicate=not stored.created,
            message=said,
        )
        return events.wire(ack)  # type: ignore[no-any-return]

    async def resolve(self, sid: str, data: Any) -> dict[str, Any]:
        ref = parse(events.TicketRef, data)
        agent_id, name = await self._me(sid)
        async with self.sessions() as s, s.begin():
            ticket = await tickets.resolve(s, ref.ticket_id, agent_id)
            if ticket is None:
                raise NotYourTicket()
            closed = await s.run_sync(
                store.add_message, ticket.conversation_id, "system",
                f"{name} has closed this chat. The assistant is here again if you need anything else.",
            )  # fmt: skip
        room = chat_room(ticket.conversation_id)
        await resume_bot(self.sessions, self.bot, ticket.conversation_id)
        for event in bot_uttered(closed.message):
            await self.out.emit(events.BOT_UTTERED, event, to=room)
        ask = events.RatingRequest(ticket_id=ticket.id)
        await self.out.emit(events.RATING_REQUEST, ask, to=room)
        await self.out.emit(events.TICKET_RESOLVED, events.TicketId(ticket_id=ticket.id), to=room)
        await self.sio.leave_room(sid, room, namespace=NS)
        self.dispatcher.request(queues.ticket_team(ticket))  # a slot came free: offer the next ticket
        telemetry.queue("resolved", queues.ticket_team(ticket))
        return {"ok": True, "ticket_id": ticket.id}
