"""Faults under two relay processes on PostgreSQL and Redis: Redis restarted, the relay's PostgreSQL connections
dropped mid-chat. Real servers, real relay processes (tests/stack.py), the real bot."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from common.settings import normalize_db_url
from knowledge.articles import KnowledgeBase
from tests import services
from tests.chat_client import Customer
from tests.stack import Stack
from tests.test_e2e_chat import stored_messages

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

# As ../shared/docs/stack-notes.md starts it on these machines (and CI's).
REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
    "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip
RESUME_TARGET_S = 5.0


@pytest.fixture(scope="module")
async def relays(stack: Stack) -> AsyncIterator[tuple[str, str, str, str]]:
    """Two relay processes on one PostgreSQL database and Redis: (first url, second url, db url, db name)."""
    services.require("127.0.0.1", 6379, "Redis")
    db_url, db_name = await services.create_pg_database()
    try:
        first = stack.add_relay(database_url=db_url, redis_url=services.REDIS_URL)
        second = stack.add_relay(database_url=db_url, redis_url=services.REDIS_URL)
        yield first, second, db_url, db_name
    finally:
        await services.drop_pg_database(db_name)


def redis_answers() -> bool:
    done = subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True, text=True, timeout=5)
    return done.stdout.strip() == "PONG"


def stop_redis() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True, timeout=10)


def start_redis() -> None:
    subprocess.run(REDIS_START, check=True, capture_output=True, timeout=15)
    deadline = time.monotonic() + 10
    while not redis_answers():
        assert time.monotonic() < deadline, "Redis did not come back"
        time.sleep(0.05)


async def mirrored_within(sender: Customer, mirror: Customer, timeout_s: float) -> bool:
    """One bot turn asked on the first relay; True if its reply reaches the tab on the other relay in time."""
    ack = await sender.say("hi")
    if not ack.get("ok"):
        return False
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = await mirror.next_reply(timeout=left)
        except TimeoutError:
            return False
        if (event.get("metadata") or {}).get("message_id", 0) > ack["message_id"]:
            return True
    return False


async def test_relaying_resumes_within_5_s_after_a_redis_restart(relays: tuple[str, str, str, str]) -> None:
    first_url, second_url, _, _ = relays
    sender, mirror = Customer(first_url), Customer(second_url)
    session_id = await sender.connect()
    await mirror.connect(session_id=session_id)  # the same chat in a second tab, on the other process
    try:
        assert await mirrored_within(sender, mirror, 15)
        await asyncio.to_thread(stop_redis)
        deadline = time.monotonic() + 10
        while redis_answers():
            assert time.monotonic() < deadline, "Redis did not stop"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a short outage: a restart, as an operator or a crash-restarting service does
        start_redis()
        back = time.monotonic()
        while not await mirrored_within(sender, mirror, 1.0):
            assert time.monotonic() - back < 30, "relaying did not resume within 30 s"
        resumed_s = time.monotonic() - back
        print(f"relaying between the two processes resumed {resumed_s:.2f} s after Redis was back")
        assert resumed_s < RESUME_TARGET_S
    finally:
        if not redis_answers():
            start_redis()
        await sender.close()
        await mirror.close()


async def terminate_backends(db_name: str) -> int:
    """pg_terminate_backend on every connection to the database but ours: what a failover or a restart does."""
    conn = await asyncpg.connect(services.PG_URL)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            db_name,
        )
        return len(rows)
    finally:
        await conn.close()


async def test_dropped_db_connections_fail_the_message_and_the_retry_is_stored_once(
    relays: tuple[str, str, str, str], demo_kb: KnowledgeBase
) -> None:
    first_url, _, db_url, db_name = relays
    article = demo_kb.by_id("restart-router")
    assert article is not None
    customer = Customer(first_url)
    session_id = await customer.connect()
    try:
        await customer.ask("hi")  # the relay's pool holds live connections now
        assert await terminate_backends(db_name) >= 1
        client_id = uuid.uuid4().hex
        first = await customer.say("how do I reboot my router?", client_id=client_id)
        assert first["ok"] is False and first["error"]["code"] == "internal", first  # not acknowledged
        told = await asyncio.wait_for(customer.errors.get(), 5)
        assert told["code"] == "internal" and "try again" in told["message"]
        retry = await customer.say("how do I reboot my router?", client_id=client_id)  # the client's resend
        assert retry["ok"] and not retry.get("duplicate"), retry
        assert (await customer.next_reply())["text"] == article.answer
        again = await customer.say("how do I reboot my router?", client_id=client_id)  # one more, acked lost
        assert again["ok"] and again["duplicate"] and again["message_id"] == retry["message_id"]
    finally:
        await customer.close()
    stored = await stored_messages(normalize_db_url(db_url), session_id)
    mine = [m for m in stored if m.client_id == client_id]
    assert [m.id for m in mine] == [retry["message_id"]]  # stored once
