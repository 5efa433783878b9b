"""Escalation and live handoff, end to end: real Rasa, action server, relay; customer and agent clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import socketio
from sqlalchemy import select

from actions.escalate import CONNECTING
from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.models import Ticket
from knowledge.articles import KnowledgeBase
from tests.agent_client import AgentClient, login
from tests.chat_client import Customer
from tests.stack import Stack
from tests.test_e2e_chat import stored_messages

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
async def agents(stack: Stack) -> AsyncIterator[dict[str, str]]:
    """Two logged-in agents: name -> token."""
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        await create_agent(s, "ada", "Ada", PASSWORD)
        await create_agent(s, "bob", "Bob", PASSWORD)
    await engine.dispose()
    tokens = {}
    for name in ("ada", "bob"):
        status, body = await login(stack.relay_url, name, PASSWORD)
        assert status == 200
        tokens[name] = body["token"]
    yield tokens


async def tickets_of(stack: Stack, conversation_id: str) -> list[Ticket]:
    engine = create_engine(stack.settings.db_url)
    try:
        async with session_factory(engine)() as s:
            result = await s.execute(select(Ticket).where(Ticket.conversation_id == conversation_id))
            return list(result.scalars())
    finally:
        await engine.dispose()


async def test_asking_for_a_person_seats_an_agent_and_the_bot_resumes_once(
    stack: Stack, agents: dict[str, str], demo_kb: KnowledgeBase
) -> None:
    ada = AgentClient(stack.relay_url)
    await ada.connect(agents["ada"])
    customer = Customer(stack.relay_url)
    session_id = await customer.connect(custom={"name": "Maya", "email": "maya@example.com", "page": "/billing"})
    try:
        await customer.ask("hello")
        assert (await customer.ask("my bill looks wrong and I can't log in"))["text"]
        await customer.say("I want to talk to a human")
        assert (await customer.next_reply())["text"] == CONNECTING
        queued = await customer.next_reply()
        assert queued["metadata"]["sender"] == "system" and "next" in queued["text"]

        waiting = await ada.wait_for_ticket(session_id)
        assert waiting["reason"] == "customer_asked" and waiting["customer"]["name"] == "Maya"

        # Human phase: the customer asks twice more; no second ticket, no bot reply.
        await customer.say("hello? anyone there?")
        await customer.say("I want to talk to a human")
        with pytest.raises(asyncio.TimeoutError):
            await customer.next_reply(timeout=2)
        assert len(await tickets_of(stack, session_id)) == 1

        accepted = await ada.call("accept", {"ticket_id": waiting["ticket_id"]})
        assert accepted["ok"]
        card = accepted["ticket"]["card"]
        assert card["reason"] == "customer_asked"
        assert card["customer"]["email"] == "maya@example.com"
        customer_turns = [t for t in card["transcript"] if t["sender"] == "customer"]
        assert [t["text"] for t in customer_turns][:3] == [
            "hello",
            "my bill looks wrong and I can't log in",
            "I want to talk to a human",
        ]
        assert all(len(t["intents"]) == 3 and t["ts"] for t in customer_turns)
        transcript = [m["text"] for m in accepted["ticket"]["messages"]]
        assert "hello? anyone there?" in transcript  # the messages sent while waiting are there too
        joined = await customer.next_reply()
        assert joined["metadata"]["sender"] == "system" and joined["text"] == "Ada joined the chat."

        await ada.call(
            "agent_message",
            {"ticket_id": waiting["ticket_id"], "text": "Hi Maya, I'm Ada. Let me look.", "client_id": "a1"},
        )
        from_agent = await customer.next_reply()
        assert from_agent["metadata"]["sender"] == "agent" and from_agent["metadata"]["agent_name"] == "Ada"
        await customer.say("thanks Ada", client_id="c-thanks")
        relayed = await ada.next("chat_message")
        while relayed["message"]["sender"] != "customer":
            relayed = await ada.next("chat_message")
        assert relayed["message"]["text"] == "thanks Ada"

        rating_requested = asyncio.get_running_loop().create_future()
        customer.sio.on("rating_request", rating_requested.set_result)
        assert (await ada.call("resolve", {"ticket_id": waiting["ticket_id"]}))["ok"]
        closed = await customer.next_reply()
        assert closed["metadata"]["sender"] == "system" and "closed" in closed["text"]
        request = await asyncio.wait_for(rating_requested, 5)
        assert (await customer.sio.call("rating", {"ticket_id": request["ticket_id"], "score": 5, "comment": "great"}))[
            "ok"
        ]
        bad = await customer.sio.call("rating", {"ticket_id": request["ticket_id"], "score": 9})
        assert bad["error"]["code"] == "invalid_payload"

        # Handback: exactly one bot reply to the next message, nothing from the human phase replayed.
        article = demo_kb.by_id("reset-password")
        assert article is not None
        answer = await customer.ask("how do I reset my password")
        assert answer["text"] == article.answer
        with pytest.raises(asyncio.TimeoutError):
            await customer.next_reply(timeout=2)
    finally:
        await customer.close()
        await ada.close()

    stored = await stored_messages(stack.settings.db_url, session_id)
    bot_texts = [m.text for m in stored if m.sender == "bot"]
    assert bot_texts.count(CONNECTING) == 1
    assert bot_texts[-1] == article.answer
    [ticket] = await tickets_of(stack, session_id)
    assert ticket.status == "resolved" and ticket.rating == 5 and ticket.rating_comment == "great"
    assert ticket.accepted_at is not None and ticket.resolved_at is not None


async def test_two_unsure_turns_in_a_row_escalate_after_offering_choices(stack: Stack, agents: dict[str, str]) -> None:
    customer = Customer(stack.relay_url)
    session_id = await customer.connect()
    try:
        first = await customer.ask("blorp zanzibar quantum toaster")
        assert first.get("quick_replies") and any(r["payload"] == "/human" for r in first["quick_replies"])
        await customer.say("flibber wocky plinth")
        assert (await customer.next_reply())["text"] == CONNECTING
    finally:
        await customer.close()
    [ticket] = await tickets_of(stack, session_id)
    assert ticket.reason == "low_confidence"
    assert ticket.card["failed_turns"] == ["blorp zanzibar quantum toaster", "flibber wocky plinth"]


async def test_always_human_article_escalates_with_its_team(stack: Stack, agents: dict[str, str]) -> None:
    customer = Customer(stack.relay_url)
    session_id = await customer.connect()
    try:
        await customer.say("I want a refund for last month, you overcharged me")
        assert (await customer.next_reply())["text"] == CONNECTING
    finally:
        await customer.close()
    [ticket] = await tickets_of(stack, session_id)
    assert ticket.reason == "always_human" and ticket.card["article_id"] == "request-refund"
    assert ticket.card["team"] == "billing"


async def test_failed_turn_limit_escalates_even_when_not_consecutive(stack: Stack, agents: dict[str, str]) -> None:
    customer = Customer(stack.relay_url)
    session_id = await customer.connect()
    try:
        await customer.ask("zorblax frindle")  # unsure 1
        await customer.ask("how do I reset my password")  # answered: the streak resets, the count does not
        await customer.ask("quantum marmalade hyperdrive")  # unsure 2
        await customer.ask("where is a store near me")  # answered
        await customer.say("gribble snark vortex")  # unsure 3: the limit (3) is reached
        assert (await customer.next_reply())["text"] == CONNECTING
    finally:
        await customer.close()
    [ticket] = await tickets_of(stack, session_id)
    assert ticket.reason == "failed_turns" and len(ticket.card["failed_turns"]) == 3


async def test_second_accept_is_refused_and_reconnects_lose_nothing(stack: Stack, agents: dict[str, str]) -> None:
    ada, bob = AgentClient(stack.relay_url), AgentClient(stack.relay_url)
    await ada.connect(agents["ada"])
    await bob.connect(agents["bob"])
    customer = Customer(stack.relay_url)
    session_id = await customer.connect()
    try:
        await customer.say("/human")  # the escalate button
        ticket = await ada.wait_for_ticket(session_id)
        assert (await ada.call("accept", {"ticket_id": ticket["ticket_id"]}))["ok"]
        refused = await bob.call("accept", {"ticket_id": ticket["ticket_id"]})
        assert refused["ok"] is False and refused["error"]["code"] == "ticket_unavailable"
        not_his = await bob.call("agent_message", {"ticket_id": ticket["ticket_id"], "text": "hi"})
        assert not_his["error"]["code"] == "not_your_ticket"

        await ada.call("agent_message", {"ticket_id": ticket["ticket_id"], "text": "Hello from Ada", "client_id": "m1"})
        resent = await ada.call(
            "agent_message", {"ticket_id": ticket["ticket_id"], "text": "Hello from Ada", "client_id": "m1"}
        )
        assert resent["duplicate"] is True

        # The customer reloads the page: same conversation, whole history, the agent still seated.
        await customer.close()
        customer = Customer(stack.relay_url)
        await customer.connect(session_id=session_id)
        history = await asyncio.wait_for(customer.history.get(), 5)
        assert history["status"] == "agent"
        assert [m["text"] for m in history["messages"]].count("Hello from Ada") == 1
        await customer.say("still there?", client_id="c-still")
        await customer.say("still there?", client_id="c-still")  # a resend after a flaky network

        # The agent reconnects and gets the open chat back, with the customer's message once.
        await ada.close()
        ada = AgentClient(stack.relay_url)
        synced = await ada.connect(agents["ada"])
        [chat] = [c for c in synced["chats"] if c["ticket"]["conversation_id"] == session_id]
        assert [m["text"] for m in chat["messages"]].count("still there?") == 1
        await ada.call("agent_message", {"ticket_id": ticket["ticket_id"], "text": "Yes!", "client_id": "m2"})
        assert (await customer.next_reply())["text"] == "Yes!"
    finally:
        await customer.close()
        await ada.close()
        await bob.close()


async def test_bad_token_and_bad_login_are_refused(stack: Stack, agents: dict[str, str]) -> None:
    status, body = await login(stack.relay_url, "ada", "wrong password")
    assert status == 401 and body["error"]["code"] == "bad_credentials"
    status, body = await login(stack.relay_url, "", "")
    assert status == 400
    intruder = AgentClient(stack.relay_url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await intruder.connect("forged-" + uuid.uuid4().hex)
    no_token = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await no_token.connect(stack.relay_url, namespaces=["/agent"], transports=["websocket"])


async def test_a_customer_cannot_read_or_write_another_conversation(stack: Stack) -> None:
    alice, mallory = Customer(stack.relay_url), Customer(stack.relay_url)
    alice_session = await alice.connect()
    await mallory.connect()
    try:
        await alice.ask("hi")
        ack = await mallory.sio.call("user_uttered", {"message": "hi", "session_id": alice_session}, timeout=10)
        assert ack["error"]["code"] == "wrong_session"
        refused = await mallory.sio.call("rating", {"ticket_id": 1, "score": 1}, timeout=10)
        assert refused["ok"] is False
        with pytest.raises(asyncio.TimeoutError):
            await mallory.next_reply(timeout=1)  # alice's replies never reach mallory
    finally:
        await alice.close()
        await mallory.close()
