"""Abuse limits (handoff/ratelimit.py) with the real defaults: the customer's messages per connection and per
address, an agent socket's events, and logins per address and per account with a growing lockout. A refused event
gets ``rate_limited`` with ``retry_after``, is not stored, and a later resend of the same client id is stored once.
The first tests drive the handlers with recording fakes; the last ones go through a real relay process."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from limits import parse_many
from redis import asyncio as aioredis
from sqlalchemy import func, select

from common.db import create_engine, session_factory
from common.settings import Settings
from handoff import events
from handoff.auth import create_agent
from handoff.customer import CustomerSide
from handoff.models import Message
from handoff.ratelimit import Limiter, RateLimited, socket_gate
from tests import services
from tests.browser import relay_for_origins
from tests.chat_client import Customer
from tests.fakes import RecordingSio
from tests.handler_harness import wire
from tests.stack import DEFAULT_RATE_LIMITS, Stack

C = events.CUSTOMER_NAMESPACE


async def customer_side(tmp_path: Path, settings: Settings) -> tuple[RecordingSio, CustomerSide, object]:
    wired = wire(f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}", settings)
    return wired.sio, wired.customer, wired.engine


async def stored_count(engine: object) -> int:
    async with session_factory(engine)() as s:  # type: ignore[arg-type]
        return int(
            (
                await s.execute(select(func.count()).select_from(Message).where(Message.sender == "customer"))
            ).scalar_one()
        )


async def test_a_flood_from_one_connection_is_refused_and_a_later_resend_is_stored_once(tmp_path: Path) -> None:
    sio, _, engine = await customer_side(tmp_path, Settings())
    await sio.call(C, "session_request", "c1", {"session_id": "flood-0001"})
    acks = [await sio.call(C, "user_uttered", "c1", {"message": f"m{i}", "client_id": f"id-{i}"}) for i in range(40)]
    accepted = [a for a in acks if a["ok"]]
    refused = [a["error"] for a in acks if not a["ok"]]
    assert len(accepted) == 5  # the default: 5 a second, 30 a minute
    assert {e["code"] for e in refused} == {"rate_limited"} and all(e["retry_after"] >= 1 for e in refused)
    assert {e.data["code"] for e in sio.sent("relay_error")} == {"rate_limited"}
    assert await stored_count(engine) == 5  # refused messages were not stored
    await asyncio.sleep(refused[0]["retry_after"])
    again = await sio.call(C, "user_uttered", "c1", {"message": "m5", "client_id": "id-5"})
    twice = await sio.call(C, "user_uttered", "c1", {"message": "m5", "client_id": "id-5"})
    assert again["ok"] and not again["duplicate"] and twice["duplicate"]
    assert await stored_count(engine) == 6
    await engine.dispose()  # type: ignore[attr-defined]


async def test_many_connections_from_one_address_share_its_budget(tmp_path: Path) -> None:
    sio, side, engine = await customer_side(tmp_path, Settings(rate_customer_message_address="3 per minute"))
    for i in range(4):
        side.addresses[f"c{i}"] = "203.0.113.7"
        await sio.call(C, "session_request", f"c{i}", {"session_id": f"addr-000{i}"})
    acks = [await sio.call(C, "user_uttered", f"c{i}", {"message": "hello"}) for i in range(4)]
    assert [a["ok"] for a in acks] == [True, True, True, False] and acks[3]["error"]["code"] == "rate_limited"
    side.addresses["c9"] = "198.51.100.1"  # someone else is not affected
    await sio.call(C, "session_request", "c9", {"session_id": "addr-0009"})
    assert (await sio.call(C, "user_uttered", "c9", {"message": "hello"}))["ok"]
    await engine.dispose()  # type: ignore[attr-defined]


async def test_typing_read_and_session_requests_have_limits_too(tmp_path: Path) -> None:
    sio, _, engine = await customer_side(tmp_path, Settings())
    requests = [await sio.call(C, "session_request", "c1", {"session_id": "sess-lim-01"}) for _ in range(12)]
    assert sum(a["ok"] for a in requests) == 10  # 10 a minute per connection
    typing = [await sio.call(C, "typing", "c2", {"typing": True}) for _ in range(15)]
    limited = [a for a in typing if not a["ok"] and a["error"]["code"] == "rate_limited"]
    assert len(limited) == 5  # 10 a second per connection
    await engine.dispose()  # type: ignore[attr-defined]


async def test_an_agent_socket_has_one_budget_for_all_its_events() -> None:
    limiter = Limiter.create(Settings(rate_agent_event="3 per second"))
    gate = socket_gate(limiter, limiter.limits.agent_event, "agent")
    for _ in range(3):
        await gate("a1", events.SYNC)
    with pytest.raises(Exception) as refused:
        await gate("a1", events.DIRECTORY)
    assert getattr(refused.value, "code", None) == "rate_limited"
    await gate("a2", events.SYNC)  # another socket has its own


async def test_in_memory_windows_answer_as_limits_own_moving_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """InMemoryWindows against limits' MovingWindowRateLimiter on its MemoryStorage: the same test, hit and
    window stats at every step of a seeded schedule over two keys and two windows, on one fake clock."""
    import random
    import time

    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    from handoff.ratelimit import InMemoryWindows

    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    ours, theirs = InMemoryWindows(), MovingWindowRateLimiter(MemoryStorage())
    items = parse_many("3 per second; 5 per 10 seconds")
    rng = random.Random(7)
    refused = 0
    for _ in range(400):
        # jittered: limits itself counts an event exactly one window old as in (hit) and as out (test)
        clock[0] += rng.choice([0.0, 0.0, 0.0, 0.02, 0.05, 0.1, 0.3, 0.9, 2.5, 11.0]) + rng.random() * 1e-4
        item, key = rng.choice(items), rng.choice(["a", "b"])
        assert await ours.test(item, "f", key) == await theirs.test(item, "f", key)
        hit = await ours.hit(item, "f", key)
        assert hit == await theirs.hit(item, "f", key)
        refused += not hit
        mine, limits_own = await ours.get_window_stats(item, "f", key), await theirs.get_window_stats(item, "f", key)
        assert mine.remaining == limits_own.remaining
        if mine.remaining == 0:
            assert mine.reset_time == pytest.approx(limits_own.reset_time)
    assert refused > 20  # the schedule does fill the windows


async def test_in_memory_windows_count_several_windows_as_limits_own_test_then_hit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Limiter.hit`` on InMemoryWindows (one pass over every window, ``take``) against the same call on limits'
    MovingWindowRateLimiter (each window tested, then each hit): the same refusals and retry-afters throughout."""
    import random
    import time

    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    from handoff.ratelimit import InMemoryWindows, Limiter, Limits, RateLimited

    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    no_settings = cast(Limits, None)  # hit() takes its windows as arguments
    ours = Limiter(InMemoryWindows(), no_settings)
    theirs = Limiter(MovingWindowRateLimiter(MemoryStorage()), no_settings)
    items = parse_many("3 per second; 5 per 10 seconds")
    rng = random.Random(11)
    refused = 0
    for _ in range(400):
        clock[0] += rng.choice([0.0, 0.0, 0.02, 0.05, 0.1, 0.3, 0.9, 2.5, 11.0]) + rng.random() * 1e-4
        key = rng.choice(["a", "b"])
        answers: list[int | None] = []
        for limiter in (ours, theirs):
            try:
                await limiter.hit(items, "f", "connection", key)
                answers.append(None)
            except RateLimited as exc:
                answers.append(exc.retry_after)
        assert answers[0] == answers[1]
        refused += answers[0] is not None
    assert refused > 20


async def test_in_memory_windows_forget_idle_keys() -> None:
    from handoff.ratelimit import InMemoryWindows

    windows = InMemoryWindows()
    windows.SWEEP_EVERY = 10
    item = parse_many("100 per 1 second")[0]
    for n in range(9):
        assert await windows.hit(item, "f", f"socket{n}")
    assert len(windows) == 9
    await asyncio.sleep(1.05)
    assert await windows.hit(item, "f", "last")  # the 10th event sweeps the nine idle keys
    assert len(windows) == 1


def post_login(url: str, username: str, password: str) -> tuple[int, dict, str | None]:
    request = urllib.request.Request(
        url + "/api/agent/login", data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers.get("Retry-After")


@pytest.mark.e2e
async def test_wrong_passwords_lock_the_account_and_a_flood_of_messages_is_refused(stack: Stack) -> None:
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        await create_agent(s, "limited", "Lim", "the right password")
    await engine.dispose()
    with relay_for_origins(stack, [], DEFAULT_RATE_LIMITS) as relay:
        codes = [post_login(relay, "limited", "wrong")[0:2] for _ in range(7)]
        assert [c for c, _ in codes[:5]] == [401] * 5  # 5 failures a minute, then locked
        status, body, retry = post_login(relay, "limited", "wrong")
        assert status == 429 and body["error"]["code"] == "rate_limited" and int(retry or 0) >= 1
        status, body, _ = post_login(relay, "limited", "the right password")
        assert status == 429  # locked means locked, even with the right password
        assert post_login(relay, "someone-else", "wrong")[0] == 401  # other accounts are not locked

        customer = Customer(relay)
        await customer.connect()
        try:
            acks = await asyncio.gather(*(customer.say("hello", client_id=uuid.uuid4().hex) for i in range(60)))
        finally:
            await customer.close()
        accepted = [a for a in acks if a["ok"]]
        assert len(accepted) <= 30 and all(a["error"]["code"] == "rate_limited" for a in acks if not a["ok"])


@pytest.mark.e2e
async def test_logins_from_one_address_are_limited(stack: Stack) -> None:
    with relay_for_origins(stack, [], {**DEFAULT_RATE_LIMITS, "WARMLINE_RATE_LOGIN_ADDRESS": "8 per minute"}) as relay:
        statuses = [post_login(relay, f"user{i}", "wrong")[0] for i in range(10)]
        assert statuses[:8] == [401] * 8 and statuses[8:] == [429, 429]


@pytest.mark.redis
async def test_on_redis_an_address_budget_is_shared_by_every_relay_process_and_a_socket_budget_is_its_own() -> None:
    """Two relay processes' limiters on one Redis: the per-address windows count together; a connection's own
    windows are kept in its process's memory (a socket lives in one process), costing no Redis round trip."""
    services.require("127.0.0.1", 6379, "Redis")
    settings = Settings(
        REDIS_URL=services.REDIS_URL, rate_customer_message="2 per minute", rate_customer_message_address="3 per minute"
    )
    first, second = Limiter.create(settings), Limiter.create(settings)
    address = f"address-{uuid.uuid4().hex}"
    items = first.limits.customer_message_address
    await first.hit(items, "user_uttered", "address", address)
    await second.hit(items, "user_uttered", "address", address)
    await first.hit(items, "user_uttered", "address", address)
    with pytest.raises(RateLimited):  # the fourth from that address, whichever process it reaches
        await second.hit(items, "user_uttered", "address", address)
    sid = f"sid-{uuid.uuid4().hex}"
    mine = first.limits.customer_message
    await first.hit(mine, "user_uttered", "connection", sid)
    await first.hit(mine, "user_uttered", "connection", sid)
    with pytest.raises(RateLimited):
        await first.hit(mine, "user_uttered", "connection", sid)
    assert [k async for k in _redis_keys(f"*{address}*")] != []  # the address's windows are on Redis
    assert [k async for k in _redis_keys(f"*{sid}*")] == []  # the connection's never went there


async def _redis_keys(pattern: str) -> AsyncIterator[bytes]:
    redis = aioredis.Redis.from_url(services.REDIS_URL)
    try:
        async for key in redis.scan_iter(match=pattern):
            yield key
    finally:
        await redis.aclose()
