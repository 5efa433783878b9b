"""The agent console's working tools on namespace ``/agent``: transfer with a note, typing, read receipts,
canned responses, KB search, the customer's record and the directory of agents and teams to transfer to.

Same shape as ``handoff.agent``: validate (pydantic) -> change state (``store`` / ``tickets`` / ``teams``) ->
commit -> emit, naming the rooms explicitly. Registered next to ``AgentSide`` in ``handoff.app``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import socketio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import reading
from common.errors import InvalidPayload, NotYourTicket
from common.settings import Settings
from handoff import access, canned, events, kb_search, queues, store, teams, telemetry, tickets
from handoff.bot_replies import bot_uttered, history_message
from handoff.conversation import agent_room, chat_room, team_room
from handoff.guard import Gate, Handler, parse, register
from handoff.models import Agent, AnyMessage, Conversation, Message, Ticket
from handoff.outbox import Outbox
from handoff.throttle import Throttle
from handoff.views import summary

if TYPE_CHECKING:
    from handoff.copilot import Copilot

NS = events.AGENT_NAMESPACE


class ConsoleSide:
    copilot: Copilot | None = None  # handoff/copilot.py, set by handoff.app

    def __init__(
        self,
        sio: socketio.AsyncServer,
        outbox: Outbox,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        dispatcher: queues.Dispatcher,
        gate: Gate | None = None,
    ) -> None:
        self.gate = gate
        self.sio = sio
        self.out = outbox
        self.sessions = sessions
        self.kb = kb_search.KBReader()
        self.dispatcher = dispatcher
        self.typing_throttle = Throttle()

    def register(self) -> None:
        handlers: list[tuple[events.Event[Any], Handler]] = [
            (events.TRANSFER, self.transfer),
            (events.AGENT_TYPING, self.typing),
            (events.AGENT_READ, self.read),
            (events.CANNED, self.canned),
            (events.KB_SEARCH, self.kb_search),
            (events.CUSTOMER_RECORD, self.customer_record),
            (events.DIRECTORY, self.directory),
        ]
        register(self.sio, self.out, handlers, self.gate)

    async def _me(self, sid: str) -> tuple[int, str]:
        session = await self.sio.get_session(sid, namespace=NS)
        return int(session["agent_id"]), str(session["name"])

    @staticmethod
    async def _my_ticket(s: AsyncSession, ticket_id: int | None, agent_id: int) -> Ticket:
        ticket = await s.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is None or ticket.agent_id != agent_id or ticket.status != "assigned":
            raise NotYourTicket()
        return ticket

    async def transfer(self, sid: str, data: Any) -> dict[str, Any]:
        """Hand a chat to an agent (seated at once) or a team (back in its queue), with a note only agents see."""
        req: events.TransferIn = parse(events.TransferIn, data)
        if (req.to_agent_id is None) == (req.to_team is None):
            raise InvalidPayload("Transfer to either an agent or a team.")
        agent_id, name = await self._me(sid)
        async with self.sessions() as s, s.begin():
            moved = await _move(s, req, agent_id, name)
        room = chat_room(moved.out.conversation_id)
        for message, to_customer in moved.posted:
            chat = events.ChatMessage(ticket_id=moved.out.ticket_id, message=history_message(message))
            await self.out.emit(events.CHAT_MESSAGE, chat, to=room)
            if to_customer is not None:
                for event in bot_uttered(message, agent_name=to_customer.agent_name):
                    await self.out.emit(events.BOT_UTTERED, event, to=room)
        await self.out.emit(events.TICKET_TRANSFERRED, moved.out, to=room)
        await self.sio.leave_room(sid, room, namespace=NS)  # the first agent leaves the conversation
        if moved.out.to_agent_id is not None:
            await self.out.emit(events.CHAT_ASSIGNED, moved.out, to=agent_room(moved.out.to_agent_id))
            if self.copilot is not None:  # the last unanswered question's suggestions follow the chat
                self.copilot.after_handoff(moved.out.ticket_id, moved.out.to_agent_id)
        elif moved.out.to_team is not None:
            await self.out.emit(events.TICKET_WAITING, moved.summary, to=team_room(moved.out.to_team))
            self.dispatcher.request(moved.out.to_team)
        self.dispatcher.request(moved.old_team)  # the sender has a free slot now
        telemetry.queue("transferred", moved.old_team)
        return {"ok": True, "transfer": moved.out.model_dump()}

    async def typing(self, sid: str, data: Any) -> dict[str, Any]:
        req: events.TypingIn = parse(events.TypingIn, data)
        if not self.typing_throttle.allow(f"{sid}:{req.ticket_id}", req.typing):
            return {"ok": True, "throttled": True}
        agent_id, name = await self._me(sid)
        async with reading(self.sessions) as s:
            ticket = await self._my_ticket(s, req.ticket_id, agent_id)
        out = events.TypingOut(ticket_id=ticket.id, sender="agent", name=name, typing=req.typing)
        await self.out.emit(events.TYPING_TO_CUSTOMER, out, to=chat_room(ticket.conversation_id))
        return {"ok": True}

    async def read(self, sid: str, data: Any) -> dict[str, Any]:
        """The agent has seen the chat up to ``message_id``: stored (it only moves forward), then the customer is told."""
        req: events.ReadIn = parse(events.ReadIn, data)
        agent_id, _ = await self._me(sid)
        async with self.sessions() as s, s.begin():
            ticket = await self._my_ticket(s, req.ticket_id, agent_id)
            message = await s.get(Message, req.message_id)
            conversation = await s.get(Conversation, ticket.conversation_id)
            if message is None or message.conversation_id != ticket.conversation_id or conversation is None:
                raise InvalidPayload("message_id: not a message of this chat")
            moved = (conversation.agent_read_id or 0) < req.message_id
            if moved:
                conversation.agent_read_id = req.message_id
        if moved:
            out = events.ReadOut(ticket_id=ticket.id, reader="agent", message_id=req.message_id)
            await self.out.emit(events.READ_TO_CUSTOMER, out, to=chat_room(ticket.conversation_id))
            await self.out.emit(events.READ_TO_AGENT, out, to=chat_room(ticket.conversation_id))
        return {"ok": True}

    async def canned(self, sid: str, data: Any) -> dict[str, Any]:
        """Canned responses whose shortcut or title matches, rendered for the chat (variables filled in)."""
        req: events.CannedQuery = parse(events.CannedQuery, data)
        agent_id, name = await self._me(sid)
        async with reading(self.sessions) as s:
            working = await teams.working_teams(s, agent_id)
            responses = await teams.canned_responses(s)
            context: dict[str, dict[str, object]] = {"agent": {"name": name}}
            if req.ticket_id is not None:
                ticket = await s.get(Ticket, req.ticket_id)
                conversation = await s.get(Conversation, ticket.conversation_id) if ticket else None
                if ticket is not None:
                    context["ticket"] = {"id": ticket.id, "team": ticket.team}
                if conversation is not None:
                    context["customer"] = dict(conversation.customer)
        found = canned.matching(responses, req.query, working)
        items = [
            events.CannedItem(
                id=c.id, shortcut=c.shortcut, title=c.title, text=canned.render(c.body, context), team=c.team
            )
            for c in found
        ]
        return {"ok": True, "items": [i.model_dump() for i in items]}

    async def kb_search(self, sid: str, data: Any) -> dict[str, Any]:
        req: events.KBQuery = parse(events.KBQuery, data)
        await self._me(sid)
        async with reading(self.sessions) as s:
            kb = await self.kb.published(s)
        hits = kb_search.search(kb, req.query)
        return {
            "ok": True,
            "hits": [events.KBHit(id=h.id, title=h.title, answer=h.answer, team=h.team).model_dump() for h in hits],
        }

    async def customer_record(self, sid: str, data: Any) -> dict[str, Any]:
        """This customer's past conversations and tickets (``customer_record``)."""
        ref: events.TicketRef = parse(events.TicketRef, data)
        agent_id, _ = await self._me(sid)
        async with reading(self.sessions) as s:
            me = await s.get(Agent, agent_id)
            ticket = await s.get(Ticket, ref.ticket_id)
            conversation = await s.get(Conversation, ticket.conversation_id) if ticket else None
            if me is None or ticket is None or conversation is None:
                raise access.NotYourCustomer()  # the same answer whether or not the ticket exists
            working = await teams.working_teams(s, agent_id)
            access.check_record(me.role, agent_id, ticket.agent_id, ticket.status, working, queues.ticket_team(ticket))
            record = await customer_record(s, conversation)
        return {"ok": True, "record": record.model_dump()}

    async def directory(self, sid: str, _data: Any) -> dict[str, Any]:
        await self._me(sid)
        async with reading(self.sessions) as s:
            loads = {a.agent_id: a for a in await teams.loads(s)}
            default = (await teams.default_team(s)).name
            agents = list((await s.execute(select(Agent).order_by(Agent.name))).scalars())
            team_rows = await teams.all_teams(s)
        refs = [
            events.AgentRef(
                id=a.id,
                name=a.name,
                presence=a.presence,
                teams=sorted(loads[a.id].teams) or [default],
                active=loads[a.id].active,
                capacity=a.capacity,
            )  # fmt: skip
            for a in agents
        ]
        team_refs = [
            events.TeamRef(name=t.name, title=t.title, is_default=t.is_default, hours=t.hours) for t in team_rows
        ]
        return {"ok": True, "agents": [r.model_dump() for r in refs], "teams": [t.model_dump() for t in team_refs]}


async def customer_record(s: AsyncSession, conversation: Conversation, limit: int = 20) -> events.CustomerRecord:
    """This customer's past conversations and tickets. Only a verified customer (handoff/identity.py) has a past:
    their conversations join by the site's user id; a claimed name or email joins nothing (anyone can type one)."""
    customer = conversation.customer or {}
    verified = bool(customer.get("verified") and customer.get("user_id"))
    query = select(Conversation).order_by(Conversation.created_at.desc()).limit(limit)
    if verified:
        query = query.where(
            Conversation.customer["user_id"].as_string() == str(customer["user_id"]),
            Conversation.customer["verified"].as_boolean().is_(True),
        )
    else:
        query = query.where(Conversation.id == conversation.id)
    conversations = list((await s.execute(query)).scalars())
    ids = [c.id for c in conversations] or [conversation.id]
    rows = list(
        (await s.execute(select(Ticket).where(Ticket.conversation_id.in_(ids)).order_by(Ticket.id.desc()))).scalars()
    )
    names = {a.id: a.name for a in (await s.execute(select(Agent))).scalars()}
    past = []
    for t in rows:
        handled = [names.get(seg.agent_id, "?") for seg in await tickets.segments(s, t.id)]
        past.append(
            events.PastTicket(
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                status=t.status,
                reason=t.reason,
                team=t.team,
                created_at=t.created_at.isoformat(),
                resolved_at=t.resolved_at.isoformat() if t.resolved_at else None,
                rating=t.rating,
                agents=handled,
            )  # fmt: skip
        )
    summaries = [{"id": c.id, "status": c.status, "created_at": c.created_at.isoformat()} for c in conversations]
    return events.CustomerRecord(customer=dict(customer), verified=verified, conversations=summaries, tickets=past)


@dataclass(frozen=True)
class ToCustomer:
    """A transfer's message is also the customer's (the note is not), shown with this agent's name if any."""

    agent_name: str | None = None


@dataclass(frozen=True)
class Moved:
    out: events.TransferOut
    summary: events.TicketSummary
    old_team: str
    # (message, how the customer sees it, or None: agents only), in the order they were stored.
    posted: list[tuple[AnyMessage, ToCustomer | None]]


async def _move(s: AsyncSession, req: events.TransferIn, agent_id: int, name: str) -> Moved:
    """The transfer's state change: reassign or requeue the ticket, store the note and what the customer is told."""
    old_team = queues.ticket_team(await ConsoleSide._my_ticket(s, req.ticket_id, agent_id))
    ticket: Ticket | None
    override: str | None = None
    if req.to_agent_id is not None:
        target, me = await s.get(Agent, req.to_agent_id), await s.get(Agent, agent_id)
        if target is None or me is None or target.id == agent_id or not access.may_use_console(target.role):
            raise InvalidPayload("Choose another agent to transfer to.")
        room_left = access.check_room(me.role, (await tickets.active_counts(s)).get(target.id, 0), target.capacity)
        if room_left is access.Room.OVERRIDE:
            override = (
                f"{name} (admin) transferred this chat to {target.name} over their capacity of {target.capacity}."
            )
        ticket = await tickets.transfer_to_agent(s, req.ticket_id, agent_id, target.id)
        to_name, to_team = target.name, None
        told = f"{name} transferred you to {target.name}."
    else:
        team = await teams.by_name(s, req.to_team or "")
        if team is None:
            raise InvalidPayload("Unknown team.")
        ticket = await tickets.transfer_to_team(s, req.ticket_id, agent_id, team.name)
        to_name, to_team = None, team.name
        told = f"{name} transferred you to our {team.title} team; someone will join shortly."
    if ticket is None:
        raise NotYourTicket()
    conversation_id = ticket.conversation_id
    handed = {"agent_name": name, "transfer_to": to_name or to_team}
    note = await s.run_sync(store.add_message, conversation_id, "note", req.note, data=handed)
    posted: list[tuple[AnyMessage, ToCustomer | None]] = [
        (note.message, None),
        ((await s.run_sync(store.add_message, conversation_id, "system", told)).message, ToCustomer()),
    ]
    if override is not None:  # an admin's capacity override, recorded for the agents of the chat
        posted.append(((await s.run_sync(store.add_message, conversation_id, "note", override)).message, None))
    if to_name is not None:
        joined = await s.run_sync(store.add_message, conversation_id, "system", f"{to_name} joined the chat.")
        posted.append((joined.message, ToCustomer(agent_name=to_name)))
    out = events.TransferOut(
        ticket_id=ticket.id, conversation_id=conversation_id, from_agent=name, to_agent=to_name,
        to_agent_id=req.to_agent_id, to_team=to_team, note=req.note,
    )  # fmt: skip
    # A console drops queue events read before the last message stored here (see TicketSummary).
    moved = summary(ticket, await s.get(Conversation, conversation_id), as_of_message_id=posted[-1][0].id)
    return Moved(out, moved, old_team, posted)
