"""End to end: the real Rasa, action server and relay, a customer on python-socketio's client."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
from sqlalchemy import select

from actions.answer import NOT_SURE
from common.db import create_engine, session_factory
from handoff import tickets
from handoff.models import Message
from knowledge.articles import KnowledgeBase
from tests.chat_client import Customer
from tests.stack import Stack, free_port

pytestmark = pytest.mark.e2e


async def stored_messages(db_url: str, session_id: str) -> list[Message]:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            result = await s.execute(select(Message).where(Message.conversation_id == session_id).order_by(Message.id))
            return list(result.scalars())
    finally:
        await engine.dispose()


async def test_greeting_kb_answer_and_fallback_are_stored_with_the_parse(stack: Stack, demo_kb: KnowledgeBase) -> None:
    customer = Customer(stack.relay_url)
    session_id = await customer.connect(custom={"name": "Dana", "page": "https://brightwave.example/help"})
    try:
        greeting = await customer.ask("hello there")
        assert "Brightwave assistant" in greeting["text"]

        article = demo_kb.by_id("reset-password")
        assert article is not None
        answer = await customer.ask("I forgot my password, how can I reset it?")
        assert answer["text"] == article.answer

        fallback = await customer.ask("what is the airspeed velocity of an unladen swallow")
        assert fallback["text"] == NOT_SURE
        assert any(r["payload"] == "/human" for r in fallback["quick_replies"])
    finally:
        await customer.close()

    messages = await stored_messages(stack.settings.db_url, session_id)
    assert [m.sender for m in messages] == ["customer", "bot"] * 3
    greet_parse = messages[0].parse
    assert greet_parse is not None and greet_parse["intent"] == "greet" and 0 < greet_parse["confidence"] <= 1
    assert len(greet_parse["intent_ranking"]) == 3
    assert messages[2].parse is not None and messages[2].parse["intent"] == article.intent
    assert all(m.created_at is not None for m in messages)
    assert messages[3].text == article.answer


async def test_the_action_server_serves_its_decision_times_behind_the_metrics_token(stack: Stack) -> None:
    def decisions(body: str) -> float:
        line = next(x for x in body.splitlines() if x.startswith("warmline_kb_decision_seconds_count"))
        return float(line.split()[-1])

    url = f"http://127.0.0.1:{stack.settings.actions_port}/metrics"
    token = stack.settings.metrics_token
    assert token
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
        async with http.get(url, headers={"Authorization": "Bearer not-it"}) as r:
            assert r.status == 401
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
            before = decisions(await r.text())
        customer = Customer(stack.relay_url)
        await customer.connect()
        try:
            await customer.ask("how do I reset my password?")
            await customer.ask("what is the airspeed velocity of an unladen swallow")
        finally:
            await customer.close()
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
            body = await r.text()
    assert decisions(body) == before + 2  # one decision per message the bot had to judge
    assert 'warmline_kb_decision_seconds_bucket{le="0.02"}' in body


async def test_reconnect_gets_history_and_a_resend_is_stored_once(stack: Stack) -> None:
    first = Customer(stack.relay_url)
    session_id = await first.connect()
    client_id = uuid.uuid4().hex
    ack = await first.say("hi", client_id=client_id)
    assert ack["ok"] and not ack.get("duplicate")
    await first.next_reply()
    await first.close()

    again = Customer(stack.relay_url)
    assert await again.connect(session_id=session_id) == session_id
    history = await asyncio.wait_for(again.history.get(), 5)
    assert [m["sender"] for m in history["messages"]] == ["customer", "bot"]
    assert history["messages"][0]["client_id"] == client_id
    resent = await again.say("hi", client_id=client_id)
    assert resent["ok"] and resent["duplicate"] and resent["message_id"] == ack["message_id"]
    with pytest.raises(asyncio.TimeoutError):
        await again.next_reply(timeout=1.5)  # a resend is not answered twice
    await again.close()
    assert len(await stored_messages(stack.settings.db_url, session_id)) == 2


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"message": ""}, "invalid_payload"),
        ({"message": "   "}, "invalid_payload"),
        ({"message": "x" * 5000}, "message_too_long"),
        ({"message": 42}, "invalid_payload"),
        ("just a string", "invalid_payload"),
        (None, "invalid_payload"),
        ({"message": "hi", "client_id": "<script>"}, "invalid_payload"),
        ({"message": "hi", "session_id": "someone-elses-session"}, "wrong_session"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_the_relay_keeps_serving(
    stack: Stack, payload: object, code: str
) -> None:
    customer = Customer(stack.relay_url)
    await customer.connect()
    try:
        ack = await customer.sio.call("user_uttered", payload, timeout=10)
        assert ack["ok"] is False and ack["error"]["code"] == code
        error = await asyncio.wait_for(customer.errors.get(), 5)
        assert error["code"] == code and error["message"]
        assert "Brightwave" in (await customer.ask("hello"))["text"]  # same connection still works
    finally:
        await customer.close()


async def test_message_before_session_request_is_refused(stack: Stack) -> None:
    customer = Customer(stack.relay_url)
    await customer.sio.connect(stack.relay_url, transports=["websocket"])
    try:
        ack = await customer.sio.call("user_uttered", {"message": "hi"}, timeout=10)
        assert ack["error"]["code"] == "no_session"
    finally:
        await customer.close()


async def test_malformed_session_request_is_refused(stack: Stack) -> None:
    customer = Customer(stack.relay_url)
    await customer.sio.connect(stack.relay_url, transports=["websocket"])
    try:
        ack = await customer.sio.call("session_request", {"session_id": "../../etc/passwd"}, timeout=10)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"
    finally:
        await customer.close()


async def test_dead_rasa_keeps_the_message_and_says_so(stack: Stack) -> None:
    relay_url = stack.add_relay(rasa_port=free_port())  # nothing listens there
    customer = Customer(relay_url)
    session_id = await customer.connect()
    try:
        ack = await customer.say("is there an outage in my area?")
        assert ack["ok"] and ack["error"]["code"] == "bot_unavailable"
        assert (await asyncio.wait_for(customer.errors.get(), 5))["code"] == "bot_unavailable"
        offer = await customer.next_reply(5)  # told at once, with a person on offer
        assert "not reachable" in offer["text"] and offer["quick_replies"][0]["payload"] == "/human"
        assert set(offer) == {"text", "quick_replies", "metadata"}
        await customer.say("/human")  # the relay itself understands the offer while Rasa is down
        waiting = await customer.next_reply(5)
        assert waiting["metadata"]["sender"] == "system"
    finally:
        await customer.close()
    stored = await stored_messages(stack.settings.db_url, session_id)
    assert [(m.sender, m.text) for m in stored][:2] == [
        ("customer", "is there an outage in my area?"),
        (
            "system",
            "Sorry, the assistant is not reachable right now. Your message is saved. Would you like to talk to a person?",
        ),
    ]
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        ticket = await tickets.open_ticket_of(s, session_id)
        assert ticket is not None and ticket.reason == "bot_unavailable"
        ticket.status = "resolved"  # out of the shared stack's queue: later tests count positions in it
    await engine.dispose()
