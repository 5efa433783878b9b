"""The agent console over the real stack: routing and offers, live queue status, typing, read receipts, canned
responses, KB search, transfers with a note (history kept, handle time per agent), nobody online, admin REST."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.models import Agent, Conversation, Ticket, TicketSegment
from tests.agent_client import AgentClient, login
from tests.chat_client import Customer
from tests.stack import Stack

pytestmark = pytest.mark.e2e

PASSWORD = "console test password"


@pytest.fixture(scope="module")
async def people(stack: Stack) -> AsyncIterator[dict[str, Any]]:
    """An admin and two agents (in no team: they work the default queue): name -> {"id", "token"}."""
    engine = create_engine(stack.settings.db_url)
    ids = {}
    async with session_factory(engine)() as s, s.begin():
        # Tickets other test modules left waiting would be offered first and take slots: start from an empty queue.
        await s.execute(update(Ticket).where(Ticket.status != "resolved").values(status="resolved"))
        await s.execute(update(Conversation).where(Conversation.status != "bot").values(status="bot"))
        # Agents of other test modules may still count as online for a moment after their sockets closed.
        await s.execute(update(Agent).values(presence="offline"))
        for username, name, role in (("root", "Root", "admin"), ("cora", "Cora", "agent"), ("dan", "Dan", "agent")):
            ids[username] = (await create_agent(s, username, name, PASSWORD, role)).id
    await engine.dispose()
    people: dict[str, Any] = {}
    for username, agent_id in ids.items():
        status, body = await login(stack.relay_url, username, PASSWORD)
        assert status == 200
        people[username] = {"id": agent_id, "token": body["token"]}
    yield people


async def admin_call(stack: Stack, token: str | None, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{stack.relay_url}/api/admin{path}", json=body, headers=headers) as r:
            return r.status, await r.json()


async def query(stack: Stack, statement: Any) -> list[Any]:
    engine = create_engine(stack.settings.db_url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.execute(statement)).scalars())
    finally:
        await engine.dispose()


async def drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


async def test_admin_api_needs_the_admin_role(stack: Stack, people: dict[str, Any]) -> None:
    status, body = await admin_call(stack, None, "GET", "/agents")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await admin_call(stack, people["cora"]["token"], "POST", "/teams", {"name": "x"})
    assert status == 403 and body["error"]["code"] == "forbidden"  # checked before the body is read
    root = people["root"]["token"]
    status, body = await admin_call(stack, root, "PATCH", "/agents/999999", {"name": "Nobody"})
    assert status == 404 and body["error"] == {"code": "not_found", "message": "No such agent."}
    status, body = await admin_call(stack, root, "POST", "/teams", {"name": "tier2", "title": "Tier 2"})
    assert status == 201 and body["team"]["hours"] is None
    bad_zone = {
        "name": "nightly",
        "title": "Nightly",
        "hours": {"tz": "Mars/Olympus", "start": "22:00", "end": "06:00"},
    }
    assert (await admin_call(stack, root, "POST", "/teams", bad_zone))[0] == 400
    status, body = await admin_call(stack, root, "POST", "/canned", {
        "shortcut": "hi", "title": "Greeting", "body": "Hi {{customer.name}}, {{agent.name}} here about ticket {{ticket.id}}.",
    })  # fmt: skip
    assert status == 201
    status, body = await admin_call(stack, root, "GET", "/agents")
    assert status == 200 and {"root", "cora", "dan"} <= {a["username"] for a in body["agents"]}
    status, body = await admin_call(stack, root, "POST", "/agents", {
        "username": "eve", "name": "Eve", "password": "short", "teams": ["tier2"],
    })  # fmt: skip
    assert status == 400 and "password" in body["error"]["message"]


async def test_offer_typing_read_receipts_canned_kb_and_transfers(stack: Stack, people: dict[str, Any]) -> None:
    cora, dan = AgentClient(stack.relay_url), AgentClient(stack.relay_url)
    synced = await cora.connect(people["cora"]["token"])
    assert synced["agent"]["presence"] == "online" and synced["agent"]["teams"] == ["support"]
    await dan.connect(people["dan"]["token"])
    customer = Customer(stack.relay_url)
    session_id = await customer.connect(custom={"name": "Nia", "email": "nia@example.com"})
    try:
        await customer.say("/human")
        status = await customer.next_event("queue_position")
        assert status["availability"] == "open" and status["position"] == 1 and status["wait_s"] == 0
        # Both are idle: the tie goes to the lower id (Cora); the offer reaches her only.
        offered = await cora.next("ticket_offered")
        assert offered["conversation_id"] == session_id
        assert dan.events["ticket_offered"].empty()
        ticket_id = offered["ticket_id"]

        accepted = await cora.call("accept", {"ticket_id": ticket_id})
        assert accepted["ok"]
        await drain(customer.bot)

        # Typing, both ways, throttled.
        assert (await customer.sio.call("typing", {"typing": True}))["ok"]
        assert (await customer.sio.call("typing", {"typing": True})).get("throttled") is True
        seen_typing = await cora.next("typing")
        assert seen_typing == {"ticket_id": ticket_id, "sender": "customer", "name": None, "typing": True}
        await cora.call("typing", {"ticket_id": ticket_id, "typing": True})
        assert (await customer.next_event("typing"))["name"] == "Cora"

        # Canned response with variables, then sent.
        canned = await cora.call("canned", {"ticket_id": ticket_id, "query": "h"})
        [greeting] = [i for i in canned["items"] if i["shortcut"] == "hi"]
        assert greeting["text"] == f"Hi Nia, Cora here about ticket {ticket_id}."
        sent = await cora.call("agent_message", {"ticket_id": ticket_id, "text": greeting["text"], "client_id": "g1"})
        assert (await customer.next_reply())["text"] == greeting["text"]
        # Sending ends "typing": the message itself says so (the widget hides the line), no second event.
        await asyncio.sleep(0.3)  # anything emitted after the reply would be here by now
        assert customer.extras["typing"].empty()

        # Read receipts, both ways.
        assert (await customer.sio.call("read", {"message_id": sent["message_id"]}))["ok"]
        assert (await cora.next("read")) == {
            "ticket_id": ticket_id,
            "reader": "customer",
            "message_id": sent["message_id"],
        }
        said = await customer.say("my modem is on fire", client_id="fire")
        agent_read = await cora.call("read", {"ticket_id": ticket_id, "message_id": said["message_id"]})
        assert agent_read["ok"], agent_read
        assert (await customer.next_event("read"))["message_id"] == said["message_id"]
        refused = await customer.sio.call("read", {"message_id": 10**9})  # not a message of this chat
        assert refused["ok"] is False

        hits = (await cora.call("kb_search", {"query": "reset my password"}))["hits"]
        assert any(h["id"] == "reset-password" and h["answer"] for h in hits)
        record = (await cora.call("customer_record", {"ticket_id": ticket_id}))["record"]
        assert record["customer"]["email"] == "nia@example.com" and record["tickets"][0]["ticket_id"] == ticket_id

        # Transfer to Dan: a note is required; Dan gets the whole history, the customer sees who joined.
        no_note = await cora.call("transfer", {"ticket_id": ticket_id, "to_agent_id": people["dan"]["id"], "note": " "})
        assert no_note["error"]["code"] == "invalid_payload"
        moved = await cora.call(
            "transfer", {"ticket_id": ticket_id, "to_agent_id": people["dan"]["id"], "note": "Modem fire, needs tier 2"}
        )
        assert moved["ok"]
        assert (await dan.next("chat_assigned"))["ticket_id"] == ticket_id
        told = [(await customer.next_reply())["text"] for _ in range(2)]
        assert told == ["Cora transferred you to Dan.", "Dan joined the chat."]
        [chat] = [c for c in (await dan.call("sync", {}))["chats"] if c["ticket"]["ticket_id"] == ticket_id]
        texts = [(m["sender"], m["text"]) for m in chat["messages"]]
        assert ("customer", "/human") in texts or any(s == "customer" for s, _ in texts)  # the bot phase
        assert ("agent", greeting["text"]) in texts and ("note", "Modem fire, needs tier 2") in texts
        assert chat["card"]["reason"]  # the handoff card travels with the chat
        gone = await cora.call("agent_message", {"ticket_id": ticket_id, "text": "still me"})
        assert gone["error"]["code"] == "not_your_ticket"
        await drain(cora.events["chat_message"])
        await customer.say("hello Dan")
        assert (await dan.next("chat_message"))["message"]["text"] in ("hello Dan",)
        await asyncio.sleep(0.5)
        assert all(e["message"]["text"] != "hello Dan" for e in list(cora.events["chat_message"]._queue))  # she left

        # Dan hands it to the Tier 2 team's queue; nobody there is online, so the customer is told so.
        await drain(customer.extras["queue_position"])
        moved = await dan.call("transfer", {"ticket_id": ticket_id, "to_team": "tier2", "note": "Escalating to tier 2"})
        assert moved["ok"]
        status = await customer.next_event("queue_position")
        assert status["team"] == "tier2" and status["availability"] == "no_agents"
        refused = await cora.call("accept", {"ticket_id": ticket_id})
        assert refused["error"]["code"] == "not_your_queue"  # Tier 2's queue now: not hers
        root = AgentClient(stack.relay_url)
        await root.connect(people["root"]["token"])
        try:  # an admin works every queue
            assert (await root.call("accept", {"ticket_id": ticket_id}))["ok"]
            assert (await root.call("resolve", {"ticket_id": ticket_id}))["ok"]
        finally:
            await root.close()
    finally:
        await customer.close()
        await cora.close()
        await dan.close()

    segments = await query(
        stack, select(TicketSegment).where(TicketSegment.ticket_id == ticket_id).order_by(TicketSegment.id)
    )
    agents = {people[name]["id"]: name for name in ("cora", "dan", "root")}
    assert [(agents[g.agent_id], g.team, g.ended_by) for g in segments] == [
        ("cora", "support", "transfer"), ("dan", "support", "transfer"), ("root", "tier2", "resolve")
    ]  # fmt: skip
    [ticket] = await query(stack, select(Ticket).where(Ticket.id == ticket_id))
    assert ticket.status == "resolved" and ticket.team == "tier2"
    status, report = await admin_call(stack, people["root"]["token"], "GET", "/reports/handle-time")
    assert status == 200 and report["transferred_tickets"] >= 1
    assert report["agents"]["Dan"]["avg_after_transfer_s"] is not None  # Dan's stretch began with a transfer


async def test_nobody_online_asks_for_an_email_and_keeps_the_ticket(stack: Stack, people: dict[str, Any]) -> None:
    customer = Customer(stack.relay_url)
    session_id = await customer.connect(custom={"name": "Olu"})
    try:
        await customer.say("/human")
        status = await customer.next_event("queue_position")
        assert status["availability"] == "no_agents" and status["wait_s"] is None
        request = await customer.next_event("email_request")
        assert request["reason"] == "no_agents"
        # A reload while waiting shows the status and the email form again.
        await customer.close()
        customer = Customer(stack.relay_url)
        assert await customer.connect(session_id=session_id) == session_id
        assert (await customer.next_event("queue_position"))["availability"] == "no_agents"
        assert (await customer.next_event("email_request"))["ticket_id"] == request["ticket_id"]
        bad = await customer.sio.call("leave_email", {"email": "not an email"})
        assert bad["error"]["code"] == "invalid_payload"
        assert (await customer.sio.call("leave_email", {"email": "olu@example.com"}))["ok"]
    finally:
        await customer.close()
    [conversation] = await query(stack, select(Conversation).where(Conversation.id == session_id))
    assert conversation.customer["email"] == "olu@example.com" and conversation.status == "queued"
    [ticket] = await query(stack, select(Ticket).where(Ticket.conversation_id == session_id))
    assert ticket.status == "queued"  # stays open for a follow-up

    # An agent coming online later is offered the waiting ticket.
    cora = AgentClient(stack.relay_url)
    try:
        await cora.connect(people["cora"]["token"])
        offered = await cora.next("ticket_offered")
        while offered["ticket_id"] != ticket.id:
            offered = await cora.next("ticket_offered")
        assert offered["customer"]["email"] == "olu@example.com"
        assert (await cora.call("accept", {"ticket_id": ticket.id}))["ok"]
        assert (await cora.call("resolve", {"ticket_id": ticket.id}))["ok"]  # leave no queue for later tests
    finally:
        await cora.close()
