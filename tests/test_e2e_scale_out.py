"""Two relay processes on PostgreSQL with python-socketio's Redis manager, against the same real bot."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from redis import asyncio as aioredis

from common.settings import normalize_db_url
from handoff.conversation import chat_room
from knowledge.articles import KnowledgeBase
from tests import services
from tests.chat_client import Customer
from tests.stack import Stack
from tests.test_e2e_chat import stored_messages

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
async def relays(stack: Stack) -> AsyncIterator[tuple[str, str, str]]:
    services.require("127.0.0.1", 6379, "Redis")
    db_url, db_name = await services.create_pg_database()
    redis_url = services.REDIS_URL
    try:
        first = stack.add_relay(database_url=db_url, redis_url=redis_url)
        second = stack.add_relay(database_url=db_url, redis_url=redis_url)
        yield first, second, db_url
    finally:
        await services.drop_pg_database(db_name)


async def test_a_chat_spans_relay_processes(relays: tuple[str, str, str], demo_kb: KnowledgeBase) -> None:
    first_url, second_url, db_url = relays
    on_first = Customer(first_url)
    session_id = await on_first.connect(custom={"name": "Sam"})
    on_second = Customer(second_url)  # the same customer in a second tab, served by the other process
    assert await on_second.connect(session_id=session_id) == session_id
    try:
        article = demo_kb.by_id("restart-router")
        assert article is not None
        reply = await on_first.ask("how do I reboot my router?")
        assert reply["text"] == article.answer
        mirrored = await on_second.next_reply()  # reached the other process through Redis
        assert mirrored["metadata"]["message_id"] == reply["metadata"]["message_id"]
    finally:
        await on_first.close()
        await on_second.close()
    stored = await stored_messages(normalize_db_url(db_url), session_id)
    assert [m.sender for m in stored] == ["customer", "bot"]
    assert stored[0].parse is not None and stored[0].parse["intent"] == article.intent


async def test_history_is_shared_after_a_reconnect_to_the_other_process(relays: tuple[str, str, str]) -> None:
    first_url, second_url, _ = relays
    customer = Customer(first_url)
    session_id = await customer.connect()
    await customer.ask("hi")
    await customer.close()
    back = Customer(second_url)
    await back.connect(session_id=session_id)
    history = await asyncio.wait_for(back.history.get(), 5)
    await back.close()
    assert [m["sender"] for m in history["messages"]] == ["customer", "bot"]


async def test_a_chat_room_emit_reaches_only_the_processes_with_a_member(relays: tuple[str, str, str]) -> None:
    """handoff/pubsub.py: the other tab's process gets the chat's emits on its own channel; the shared channel that
    every process decodes carries none of them, and a process with nobody in the room is sent nothing."""
    first_url, second_url, _ = relays
    redis = aioredis.Redis.from_url(services.REDIS_URL)
    shared = redis.pubsub()
    await shared.subscribe("socketio")
    on_first = Customer(first_url)
    session_id = await on_first.connect()
    on_second = Customer(second_url)
    await on_second.connect(session_id=session_id)
    try:
        members = await redis.smembers(f"socketio:room:/:{chat_room(session_id)}")
        assert len(members) == 2  # both processes hold a tab of this chat
        reply = await on_first.ask("hi")
        assert (await on_second.next_reply())["metadata"]["message_id"] == reply["metadata"]["message_id"]
        seen = []
        while (message := await shared.get_message(ignore_subscribe_messages=True, timeout=0.5)) is not None:
            seen.append(json.loads(message["data"]))
        assert [m for m in seen if m.get("method") == "emit" and m.get("room") == chat_room(session_id)] == []
    finally:
        await on_second.close()
        await on_first.close()
        await shared.aclose()
    await asyncio.sleep(0.5)  # the disconnects leave the room
    assert await redis.smembers(f"socketio:room:/:{chat_room(session_id)}") == set()  # nobody left: no sends
    await redis.aclose()
