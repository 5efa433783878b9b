"""Scale-out behind the real load balancer: two `warmline relay` processes on one PostgreSQL database and Redis,
HAProxy from deploy/haproxy.cfg in front (sticky cookie), the session's real Rasa and action server behind.

Clients go through the balancer; a client is sent to a chosen relay with the balancer's own sticky cookie (what
its first response sets), so "a customer on one process and their agent on the other" is exact, both ways."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.escalate import CONNECTING
from common.db import create_engine, session_factory
from common.settings import normalize_db_url
from handoff.auth import create_agent
from handoff.models import Agent, Conversation, Ticket, TicketSegment
from tests import services
from tests.agent_client import AgentClient
from tests.chat_client import Customer
from tests.lb import Balancer, running_balancer
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

PASSWORD = "correct horse battery"
AGENTS = ("ada", "bob", "cy")
RESOLVE_DELAYS_S = (0.0, 0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)


@dataclass
class Cluster:
    lb: Balancer
    db_url: str
    sessions: async_sessionmaker[AsyncSession]
    tokens: dict[str, str]  # agent username -> token
    ids: dict[str, int]  # agent username -> id


@pytest.fixture(scope="module")
async def cluster(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    services.require("127.0.0.1", 6379, "Redis")
    db_url, db_name = await services.create_pg_database()
    engine = None
    try:
        relays = [stack.add_relay(database_url=db_url, redis_url=services.REDIS_URL) for _ in range(2)]
        engine = create_engine(normalize_db_url(db_url))
        sessions = session_factory(engine)
        ids = {}
        async with sessions() as s, s.begin():
            for name in AGENTS:
                ids[name] = (await create_agent(s, name, name.title(), PASSWORD)).id
        with running_balancer(relays, tmp_path_factory.mktemp("lb")) as lb:
            tokens = {}
            async with aiohttp.ClientSession() as http:
                for name in AGENTS:
                    login = {"username": name, "password": PASSWORD}
                    async with http.post(f"{lb.url}/api/agent/login", json=login) as reply:
                        assert reply.status == 200, await reply.text()
                        tokens[name] = (await reply.json())["token"]
            yield Cluster(lb, db_url, sessions, tokens, ids)
    finally:
        if engine is not None:
            await engine.dispose()
        await services.drop_pg_database(db_name)


class PinnedCustomer(Customer):
    """A customer through the balancer, on the relay its cookie names; websocket or Engine.IO long-polling."""

    def __init__(self, lb: Balancer, server: str | None, transport: str = "websocket") -> None:
        super().__init__(lb.url)
        self.headers = lb.pinned(server) if server else {}
        self.transport = transport

    async def connect(self, session_id: str | None = None, custom: dict[str, Any] | None = None) -> str:
        await self.sio.connect(self.url, headers=self.headers, transports=[self.transport])
        await self.sio.emit("session_request", {"session_id": session_id, "customData": custom or {}})
        self.session_id = await asyncio.wait_for(self._confirmed.get(), 10)
        return self.session_id


class PinnedAgent(AgentClient):
    def __init__(self, lb: Balancer, server: str) -> None:
        super().__init__(lb.url)
        self.headers = lb.pinned(server)

    async def connect(self, token: str) -> dict[str, Any]:
        await self.sio.connect(
            self.url, namespaces=["/agent"], auth={"token": token}, transports=["websocket"], headers=self.headers
        )
        return await self.call("sync", {})


async def tickets_of(cluster: Cluster, conversation_id: str) -> list[Ticket]:
    async with cluster.sessions() as s:
        rows = await s.execute(select(Ticket).where(Ticket.conversation_id == conversation_id).order_by(Ticket.id))
        return list(rows.scalars())


async def set_capacity(cluster: Cluster, name: str, capacity: int) -> None:
    async with cluster.sessions() as s, s.begin():
        await s.execute(update(Agent).where(Agent.id == cluster.ids[name]).values(capacity=capacity))


async def escalated(customer: Customer, agent: AgentClient) -> dict[str, Any]:
    """The customer presses "Talk to a person"; the ticket as the agent (elsewhere) is told of it."""
    assert customer.session_id is not None
    await customer.say("/human")
    return await agent.wait_for_ticket(customer.session_id)


async def next_from(customer: Customer, sender: str, text: str | None = None) -> dict[str, Any]:
    """The customer's next message from ``sender`` (with ``text``, if given), past queue notices and the like."""
    while True:
        reply = await customer.next_reply()
        if reply["metadata"]["sender"] == sender and text in (None, reply["text"]):
            return reply


async def next_chat_message(agent: AgentClient, sender: str) -> dict[str, Any]:
    while True:
        event = await agent.next("chat_message")
        if event["message"]["sender"] == sender:
            return dict(event["message"])


def test_the_balancer_spreads_new_clients_and_keeps_each_on_its_relay(cluster: Cluster) -> None:
    fresh = [cluster.lb.served_by() for _ in range(8)]  # no cookie: leastconn over idle relays spreads them
    assert set(fresh) == {"relay1", "relay2"}, fresh
    for server in ("relay1", "relay2"):  # with the cookie: always the same relay
        assert {cluster.lb.served_by(cluster.lb.pinned(server)) for _ in range(5)} == {server}


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_a_chat_through_the_balancer_without_a_chosen_relay(cluster: Cluster, transport: str) -> None:
    """Engine.IO long-polling is many HTTP requests: it works only if the sticky cookie keeps them on one relay."""
    customer = PinnedCustomer(cluster.lb, None, transport)
    await customer.connect()
    try:
        assert customer.sio.transport() == transport
        for _ in range(3):
            assert (await customer.ask("hi"))["text"]
    finally:
        await customer.close()


@pytest.mark.parametrize(("customer_on", "agent_on"), [("relay1", "relay2"), ("relay2", "relay1")])
async def test_customer_and_agent_on_different_relays(cluster: Cluster, customer_on: str, agent_on: str) -> None:
    """Presence, the queue, capacity, the chat, typing and read receipts, with the customer on one process and
    the agent on the other."""
    await set_capacity(cluster, "ada", 1)
    ada = PinnedAgent(cluster.lb, agent_on)
    synced = await ada.connect(cluster.tokens["ada"])
    assert synced["ok"]
    customer = PinnedCustomer(cluster.lb, customer_on)
    other = PinnedCustomer(cluster.lb, customer_on)
    session_id = await customer.connect(custom={"name": "Maya"})
    await other.connect()
    try:
        # Presence across processes: ada connected on the other relay, so the queue is open and she is offered it.
        assert (await customer.ask("hello"))["text"]
        waiting = await escalated(customer, ada)
        assert (await customer.next_reply())["text"] == CONNECTING
        status = await customer.next_event("queue_position")
        assert status["availability"] == "open" and status["position"] >= 1 and status["wait_s"] is not None
        while (await ada.next("ticket_offered"))["ticket_id"] != waiting["ticket_id"]:
            pass  # routing offered her the ticket from the other process

        assert (await ada.call("accept", {"ticket_id": waiting["ticket_id"]}))["ok"]
        assert await next_from(customer, "system", "Ada joined the chat.")

        # Capacity across processes: ada holds 1 of 1; a second customer's ticket is not hers to take.
        second = await escalated(other, ada)
        refused = await ada.call("accept", {"ticket_id": second["ticket_id"]})
        assert refused["ok"] is False and refused["error"]["code"] == "at_capacity"

        # The chat both ways.
        sent = await ada.call(
            "agent_message", {"ticket_id": waiting["ticket_id"], "text": "Hi Maya", "client_id": "a1"}
        )
        assert sent["ok"]
        from_agent = await next_from(customer, "agent")
        assert from_agent["text"] == "Hi Maya" and from_agent["metadata"]["agent_name"] == "Ada"
        ack = await customer.say("thanks", client_id=uuid.uuid4().hex)
        assert ack["ok"]
        assert (await next_chat_message(ada, "customer"))["text"] == "thanks"

        # Typing both ways.
        assert (await ada.call("typing", {"ticket_id": waiting["ticket_id"], "typing": True}))["ok"]
        while not (typing := await customer.next_event("typing"))["typing"]:
            pass  # the "stopped typing" that her message implied
        assert typing["sender"] == "agent"
        assert (await customer.sio.call("typing", {"typing": True}, timeout=10))["ok"]
        seen_typing = await ada.next("typing")
        assert seen_typing["sender"] == "customer" and seen_typing["ticket_id"] == waiting["ticket_id"]

        # Read receipts both ways.
        read = await ada.call("read", {"ticket_id": waiting["ticket_id"], "message_id": ack["message_id"]})
        assert read["ok"]
        receipt = await customer.next_event("read")
        assert receipt["reader"] == "agent" and receipt["message_id"] == ack["message_id"]
        assert (await customer.sio.call("read", {"message_id": sent["message_id"]}, timeout=10))["ok"]
        while (agent_receipt := await ada.next("read"))["reader"] != "customer":
            pass
        assert agent_receipt["message_id"] == sent["message_id"]

        assert (await ada.call("resolve", {"ticket_id": waiting["ticket_id"]}))["ok"]
        while "closed this chat" not in (await next_from(customer, "system"))["text"]:
            pass  # the customer is told, through the other process
        # A slot came free: now the second ticket is hers.
        assert (await ada.call("accept", {"ticket_id": second["ticket_id"]}))["ok"]
        assert (await ada.call("resolve", {"ticket_id": second["ticket_id"]}))["ok"]
    finally:
        await customer.close()
        await other.close()
        await ada.close()
    [ticket] = await tickets_of(cluster, session_id)
    assert ticket.status == "resolved" and ticket.agent_id == cluster.ids["ada"]


async def test_100_escalations_at_once_over_two_relays_make_100_tickets(cluster: Cluster) -> None:
    customers = [PinnedCustomer(cluster.lb, f"relay{1 + i % 2}") for i in range(100)]
    await asyncio.gather(*(c.connect() for c in customers))
    try:
        acks = await asyncio.gather(*(c.say("/human") for c in customers))
        assert all(a["ok"] for a in acks)
        ids = [c.session_id for c in customers]
        for _ in range(600):  # the bot's escalation action opens each ticket; a loaded 2-core box: up to 60 s
            async with cluster.sessions() as s:
                made = await s.scalar(select(func.count()).select_from(Ticket).where(Ticket.conversation_id.in_(ids)))
            if made == 100:
                break
            await asyncio.sleep(0.1)
        # One more escalation from every customer at once: still one ticket each.
        await asyncio.gather(*(c.say("/human") for c in customers))
        await asyncio.sleep(2)
        async with cluster.sessions() as s:
            rows = (await s.execute(select(Ticket.conversation_id).where(Ticket.conversation_id.in_(ids)))).all()
    finally:
        await asyncio.gather(*(c.close() for c in customers))
    assert len(rows) == 100 and {r[0] for r in rows} == set(ids)


async def test_two_agents_on_different_relays_accepting_one_ticket_seat_exactly_one(cluster: Cluster) -> None:
    await set_capacity(cluster, "ada", 20)
    await set_capacity(cluster, "bob", 20)
    ada, bob = PinnedAgent(cluster.lb, "relay1"), PinnedAgent(cluster.lb, "relay2")
    await ada.connect(cluster.tokens["ada"])
    await bob.connect(cluster.tokens["bob"])
    customers = [PinnedCustomer(cluster.lb, "relay1" if i % 2 else "relay2") for i in range(10)]
    await asyncio.gather(*(c.connect() for c in customers))
    try:
        tickets = [await escalated(c, ada) for c in customers]
        for ticket in tickets:  # both at the same instant, from the two processes
            a, b = await asyncio.gather(
                ada.call("accept", {"ticket_id": ticket["ticket_id"]}),
                bob.call("accept", {"ticket_id": ticket["ticket_id"]}),
            )
            assert [a["ok"], b["ok"]].count(True) == 1, (a, b)
            loser = b if a["ok"] else a
            assert loser["error"]["code"] == "ticket_unavailable"
        for ticket in tickets:
            [stored] = await tickets_of(cluster, ticket["conversation_id"])
            assert stored.status == "assigned" and stored.agent_id in (cluster.ids["ada"], cluster.ids["bob"])
            async with cluster.sessions() as s:
                segments = (await s.execute(select(TicketSegment).where(TicketSegment.ticket_id == stored.id))).all()
            assert len(segments) == 1  # one seat, one stretch of handle time
        for ticket in tickets:
            await ada.call("resolve", {"ticket_id": ticket["ticket_id"]})
            await bob.call("resolve", {"ticket_id": ticket["ticket_id"]})
    finally:
        await asyncio.gather(*(c.close() for c in customers))
        await ada.close()
        await bob.close()


async def test_a_transfer_racing_a_resolve_leaves_one_consistent_state(cluster: Cluster) -> None:
    """Ada's two tabs, on the two processes: one transfers the chat to Cy while the other resolves it."""
    await set_capacity(cluster, "ada", 20)
    await set_capacity(cluster, "cy", 20)
    tab1, tab2 = PinnedAgent(cluster.lb, "relay1"), PinnedAgent(cluster.lb, "relay2")
    cy = PinnedAgent(cluster.lb, "relay1")
    await tab1.connect(cluster.tokens["ada"])
    await tab2.connect(cluster.tokens["ada"])
    await cy.connect(cluster.tokens["cy"])
    customers = [PinnedCustomer(cluster.lb, "relay2" if i % 2 else "relay1") for i in range(len(RESOLVE_DELAYS_S))]
    await asyncio.gather(*(c.connect() for c in customers))
    outcomes: list[str] = []
    try:
        for customer in customers:
            ticket = await escalated(customer, tab1)
            assert (await tab1.call("accept", {"ticket_id": ticket["ticket_id"]}))["ok"]
            transfer = {
                "ticket_id": ticket["ticket_id"],
                "to_agent_id": cluster.ids["cy"],
                "note": "billing, over to you",
            }
            # The resolve leaves a little after the transfer, later each round, so that each can win some races.
            delay = RESOLVE_DELAYS_S[len(outcomes)]

            async def resolve_later(ticket_id: int = ticket["ticket_id"], delay: float = delay) -> dict[str, Any]:
                await asyncio.sleep(delay)
                return await tab2.call("resolve", {"ticket_id": ticket_id})

            moved, resolved = await asyncio.gather(tab1.call("transfer", transfer), resolve_later())
            assert [moved["ok"], resolved["ok"]].count(True) == 1, (moved, resolved)
            [stored] = await tickets_of(cluster, ticket["conversation_id"])
            async with cluster.sessions() as s:
                conversation = await s.get(Conversation, ticket["conversation_id"])
                open_segments = (
                    await s.execute(
                        select(TicketSegment).where(
                            TicketSegment.ticket_id == stored.id, TicketSegment.ended_at.is_(None)
                        )
                    )
                ).all()
            assert conversation is not None
            if moved["ok"]:
                outcomes.append("transferred")
                assert stored.status == "assigned" and stored.agent_id == cluster.ids["cy"]
                assert conversation.status == "agent" and len(open_segments) == 1
                assert resolved["error"]["code"] == "not_your_ticket", resolved
                assert (await cy.call("resolve", {"ticket_id": ticket["ticket_id"]}))["ok"]
            else:
                outcomes.append("resolved")
                assert moved["error"]["code"] == "not_your_ticket", moved
                assert stored.status == "resolved" and stored.resolved_at is not None
                assert conversation.status != "agent" and open_segments == []
    finally:
        await asyncio.gather(*(c.close() for c in customers))
        for agent in (tab1, tab2, cy):
            await agent.close()
    print(
        f"transfer vs resolve, 8 races: {outcomes.count('transferred')} transferred, {outcomes.count('resolved')} resolved"
    )


def test_the_deployed_config_is_valid(tmp_path: Path) -> None:
    """deploy/haproxy.cfg exactly as shipped (its own ports) passes HAProxy's own check."""
    import subprocess

    from tests.lb import CONFIG, require_haproxy

    done = subprocess.run([require_haproxy(), "-c", "-f", str(CONFIG)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
