"""Faults under `warmline run`, with the real processes: Rasa or the action server SIGKILLed mid-conversation, the
relay SIGKILLed mid human chat. The command's supervisor restarts each; these tests check what customers and
agents see meanwhile and that nothing is lost or doubled. (docs/reliability.md lists the promises.)"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import select

from actions.escalate import CONNECTING
from common.db import create_engine, session_factory
from common.settings import ROOT, Settings
from handoff.customer import HUMAN_PAYLOAD
from handoff.models import Message
from knowledge.articles import KnowledgeBase
from tests.agent_client import AgentClient, login
from tests.chat_client import Customer
from tests.stack import NO_RATE_LIMITS, free_port
from tests.test_run_command import _kill_leftovers
from warmline.training import ensure_model

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

PASSWORD = "correct horse battery"
BACK_TIMEOUT_S = 240  # Rasa takes 15-40 s to start on two busy cores; the first restart waits 1 s


@dataclass
class Warmline:
    """One `warmline run` started as an operator starts it, in a scratch state dir, on free ports."""

    proc: subprocess.Popen[bytes]
    state_dir: Path
    output: Path
    env: dict[str, str]
    relay_url: str

    def said(self) -> str:
        return self.output.read_text(errors="replace")

    def pid(self, service: str) -> int:
        """The process id of one of the command's services, found by its command line and our state dir."""
        marker = f"WARMLINE_STATE_DIR={self.state_dir}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if marker not in (proc / "environ").read_bytes().split(b"\0"):
                    continue
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if service == "rasa" and argv[1:4] == [b"-m", b"rasa", b"run"]:
                return int(proc.name)
            if argv[1:4] == [b"-m", b"warmline.cli", service.encode()]:
                return int(proc.name)
        raise LookupError(f"no {service} process of {self.state_dir}")

    async def wait_said(self, text: str, count: int, timeout_s: float = BACK_TIMEOUT_S) -> None:
        """Wait until the command's output holds ``text`` ``count`` times (the supervisor logs each restart)."""
        deadline = time.monotonic() + timeout_s
        while self.said().count(text) < count:
            assert self.proc.poll() is None, self.said()
            assert time.monotonic() < deadline, f"{text!r} x{count} not said within {timeout_s} s:\n{self.said()}"
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def warmline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warmline]:
    state_dir = tmp_path_factory.mktemp("warmline-run-faults")
    model, _ = ensure_model(Settings())  # the cached model: the command does not train
    (state_dir / "models").mkdir()
    shutil.copy(model, state_dir / "models" / model.name)
    ports = {f"WARMLINE_{name}_PORT": str(free_port()) for name in ("RELAY", "RASA", "ACTIONS")}
    env = {
        **os.environ, "WARMLINE_STATE_DIR": str(state_dir), "DATABASE_URL": "", "REDIS_URL": "",
        "WARMLINE_ADMIN_PASSWORD": PASSWORD, **ports, **NO_RATE_LIMITS,  # faults here, abuse limits elsewhere
    }  # fmt: skip
    output = state_dir / "warmline-run.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "warmline.cli", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    run = Warmline(proc, state_dir, output, env, f"http://127.0.0.1:{ports['WARMLINE_RELAY_PORT']}")
    try:
        deadline = time.monotonic() + 300
        while "Warmline is ready" not in run.said():
            assert proc.poll() is None and time.monotonic() < deadline, run.said()
            time.sleep(0.3)
        created = subprocess.run(
            [sys.executable, "-m", "warmline.cli", "agent", "create", "ada", "--name", "Ada", "--password", PASSWORD],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        yield run
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        _kill_leftovers(state_dir)


@pytest.fixture(scope="module")
async def token(warmline: Warmline) -> str:
    status, body = await login(warmline.relay_url, "ada", PASSWORD)
    assert status == 200, body
    return str(body["token"])


def supervisor_lines(warmline: Warmline) -> list[str]:
    return [line.split("warmline.supervisor ", 1)[1] for line in warmline.said().splitlines() if "supervisor" in line]


async def resolve_quietly(agent: AgentClient, *ticket_ids: int | None) -> None:
    for ticket_id in ticket_ids:
        if ticket_id is not None and agent.sio.connected:
            await agent.call("resolve", {"ticket_id": ticket_id})


def relay_health(url: str) -> int:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as reply:
        return int(reply.status)


async def seated_chat(url: str, token: str) -> tuple[Customer, AgentClient, int]:
    """A customer in the human phase with Ada seated: (customer, Ada, ticket id)."""
    ada = AgentClient(url)
    await ada.connect(token)
    customer = Customer(url)
    session_id = await customer.connect(custom={"name": "Noor"})
    await customer.say("I want to talk to a human")
    assert (await customer.next_reply(30))["text"] == CONNECTING
    ticket = await ada.wait_for_ticket(session_id, 30)
    assert (await ada.call("accept", {"ticket_id": ticket["ticket_id"]}))["ok"]
    return customer, ada, int(ticket["ticket_id"])


def meta(event: dict[str, Any]) -> dict[str, Any]:
    """Our fields of a ``bot_uttered`` (message id, sender, client id): under ``metadata``, beside Rasa's shape."""
    return dict(event.get("metadata") or {})


async def next_from(customer: Customer, sender: str, timeout: float = 10) -> dict[str, Any]:
    while True:
        event = await customer.next_reply(timeout)
        if meta(event).get("sender") == sender:
            return event


async def next_chat_message(agent: AgentClient, sender: str, timeout: float = 10) -> dict[str, Any]:
    while True:
        event = await agent.next("chat_message", timeout)
        if event["message"]["sender"] == sender:
            return dict(event["message"])


async def assert_human_chat_goes_on(customer: Customer, ada: AgentClient, ticket_id: int, tag: str) -> None:
    ack = await customer.say(f"customer during {tag}")
    assert ack["ok"] and "error" not in ack, ack
    assert (await next_chat_message(ada, "customer"))["text"] == f"customer during {tag}"
    said = await ada.call("agent_message", {"ticket_id": ticket_id, "text": f"agent during {tag}"})
    assert said["ok"], said
    assert (await next_from(customer, "agent"))["text"] == f"agent during {tag}"


async def test_sigkill_rasa_mid_conversation(warmline: Warmline, token: str, demo_kb: KnowledgeBase) -> None:
    article = demo_kb.by_id("restart-router")
    assert article is not None
    human, ada, ticket_id = await seated_chat(warmline.relay_url, token)
    bot_customer, offered = Customer(warmline.relay_url), Customer(warmline.relay_url)
    waiting_id: int | None = None
    await bot_customer.connect()
    try:
        assert (await bot_customer.ask("how do I reboot my router?"))["text"] == article.answer
        os.kill(warmline.pid("rasa"), signal.SIGKILL)
        started = time.perf_counter()
        ack = await bot_customer.say("how do I reboot my router?")
        error = await asyncio.wait_for(bot_customer.errors.get(), 5)
        told_after_s = time.perf_counter() - started
        assert error["code"] == "bot_unavailable" and error["message"]
        assert told_after_s < 2, f"told after {told_after_s:.2f} s"
        assert ack["ok"] and ack["message_id"] and ack["error"]["code"] == "bot_unavailable"  # stored, not answered
        offer = await next_from(bot_customer, "system")  # "... would you like to talk to a person?"
        assert [q["payload"] for q in offer.get("quick_replies") or []] == [HUMAN_PAYLOAD], offer
        # Another customer, in the bot phase while Rasa is down, takes the offer: a ticket, with the transcript.
        await offered.connect(custom={"name": "Ira"})
        assert (await offered.say("my invoice is wrong"))["error"]["code"] == "bot_unavailable"
        await offered.say(HUMAN_PAYLOAD)
        waiting = await ada.wait_for_ticket(str(offered.session_id), 15)
        waiting_id = int(waiting["ticket_id"])
        accepted = await ada.call("accept", {"ticket_id": waiting["ticket_id"]})
        assert accepted["ok"], accepted
        assert "my invoice is wrong" in [m["text"] for m in accepted["ticket"]["messages"]]  # the transcript
        await assert_human_chat_goes_on(human, ada, ticket_id, "the Rasa outage")
        assert relay_health(warmline.relay_url) == 200
        await warmline.wait_said("rasa is back", 1)
        assert (await bot_customer.ask("how do I reboot my router?", timeout=30))["text"] == article.answer
        assert "restarting rasa (restart 1)" in warmline.said()
        print(f"Rasa SIGKILLed: customer told after {told_after_s:.3f} s; the bot answered again after "
              f"{time.perf_counter() - started:.1f} s; {supervisor_lines(warmline)}")  # fmt: skip
    finally:
        await resolve_quietly(ada, ticket_id, waiting_id)  # Ada's capacity is 3: free her seats for the next test
        for client in (bot_customer, offered, human, ada):
            await _close_quietly(client)


async def test_sigkill_action_server_mid_conversation(warmline: Warmline, token: str, demo_kb: KnowledgeBase) -> None:
    article = demo_kb.by_id("restart-router")
    assert article is not None
    human, ada, ticket_id = await seated_chat(warmline.relay_url, token)
    bot_customer = Customer(warmline.relay_url)
    await bot_customer.connect()
    try:
        assert (await bot_customer.ask("how do I reboot my router?"))["text"] == article.answer
        os.kill(warmline.pid("actions"), signal.SIGKILL)
        started = time.perf_counter()
        ack = await bot_customer.say("how do I reboot my router?")
        try:
            error: dict[str, Any] | None = await asyncio.wait_for(bot_customer.errors.get(), 5)
        except TimeoutError:
            error = None
        told_after_s = time.perf_counter() - started
        await asyncio.sleep(0.5)  # the offer follows the error
        replies = _drain(bot_customer.bot)
        assert ack["ok"] and ack["message_id"]  # stored either way
        offers = [r for r in replies if (r.get("metadata") or {}).get("sender") == "system"]
        assert error is None or any(q["payload"] == HUMAN_PAYLOAD for r in offers for q in r.get("quick_replies") or [])
        await assert_human_chat_goes_on(human, ada, ticket_id, "the action server outage")
        assert relay_health(warmline.relay_url) == 200
        await warmline.wait_said("action server is back", 1)
        assert (await bot_customer.ask("how do I reboot my router?", timeout=30))["text"] == article.answer
        print(f"action server SIGKILLed: relay_error {error}; bot replies meanwhile {replies}; the bot answered "
              f"again after {time.perf_counter() - started:.1f} s; {supervisor_lines(warmline)}")  # fmt: skip
        # Rasa runs a custom action that cannot reach the action server as an action with no events and answers
        # with no messages; bot/channel.py turns that into a 503, which the relay tells the customer.
        assert error is not None, f"no relay_error within 5 s while the action server was down; bot replies: {replies}"
        assert error["code"] == "bot_unavailable", error
        assert told_after_s < 2, f"told after {told_after_s:.2f} s"
    finally:
        await resolve_quietly(ada, ticket_id)
        for client in (bot_customer, human, ada):
            await _close_quietly(client)


# ---------------------------------------------------------------------------------------------------------------
# The relay SIGKILLed mid human chat. Both sides keep every message until the relay acknowledges it and resend the
# unacknowledged ones with the same client_id after reconnecting (as the widget and the console do).

MESSAGES_EACH = 20
CALL_TIMEOUT_S = 3
OUTAGE = (ConnectionError, OSError, asyncio.TimeoutError, socketio.exceptions.SocketIOError)


@dataclass
class Side:
    """What one side sent (client_id -> acked message id) and saw of the other (message id -> client_id)."""

    acked: dict[str, int]
    seen: dict[int, str | None]
    reconnects: int = 0
    resent: int = 0
    duplicates_acked: int = 0


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def _close_quietly(client: Customer | AgentClient) -> None:
    try:
        await client.close()
    except Exception:  # the relay it talked to is gone; nothing to close cleanly
        pass


async def customer_side(url: str, session_id: str, side: Side, acked_enough: asyncio.Event) -> None:
    pending = [(f"c-{i}", f"customer says {i}") for i in range(MESSAGES_EACH)]
    client: Customer | None = None
    sent_before: set[str] = set()

    def keep(client: Customer) -> None:
        for event in _drain(client.bot):
            if meta(event).get("sender") == "agent":
                side.seen[int(meta(event)["message_id"])] = meta(event).get("client_id")
        for history in _drain(client.history):
            for m in history["messages"]:
                if m["sender"] == "agent":
                    side.seen[int(m["message_id"])] = m.get("client_id")

    while pending:
        if client is None:
            client = Customer(url)
            try:
                assert await client.connect(session_id=session_id) == session_id  # back in the same chat
            except OUTAGE:
                await _close_quietly(client)
                client = None
                await asyncio.sleep(0.3)
                continue
            side.reconnects += 1
        client_id, text = pending[0]
        if client_id in sent_before:
            side.resent += 1
        sent_before.add(client_id)
        payload = {"message": text, "session_id": session_id, "client_id": client_id}
        try:
            ack = await client.sio.call("user_uttered", payload, timeout=CALL_TIMEOUT_S)
        except OUTAGE:
            keep(client)
            await _close_quietly(client)
            client = None
            continue
        if ack.get("ok"):
            side.acked[client_id] = int(ack["message_id"])
            side.duplicates_acked += bool(ack.get("duplicate"))
            pending.pop(0)
            if len(side.acked) >= 5:
                acked_enough.set()
        await asyncio.sleep(0.15)
        keep(client)
    assert client is not None
    await asyncio.sleep(2)  # the agent's last messages, live
    keep(client)
    await client.close()


async def agent_side(url: str, token: str, ticket_id: int, side: Side, acked_enough: asyncio.Event) -> None:
    pending = [(f"a-{i}", f"agent says {i}") for i in range(MESSAGES_EACH)]
    client: AgentClient | None = None
    sent_before: set[str] = set()

    def keep(client: AgentClient) -> None:
        for event in _drain(client.events["chat_message"]):
            if event["message"]["sender"] == "customer":
                side.seen[int(event["message"]["message_id"])] = event["message"].get("client_id")

    while pending:
        if client is None:
            client = AgentClient(url)
            try:
                synced = await client.connect(token)
            except OUTAGE:
                await _close_quietly(client)
                client = None
                await asyncio.sleep(0.3)
                continue
            side.reconnects += 1
            chat = next(c for c in synced["chats"] if c["ticket"]["ticket_id"] == ticket_id)  # still seated
            for m in chat["messages"]:
                if m["sender"] == "customer":
                    side.seen[int(m["message_id"])] = m.get("client_id")
        client_id, text = pending[0]
        if client_id in sent_before:
            side.resent += 1
        sent_before.add(client_id)
        payload = {"ticket_id": ticket_id, "text": text, "client_id": client_id}
        try:
            ack = await client.sio.call("agent_message", payload, namespace="/agent", timeout=CALL_TIMEOUT_S)
        except OUTAGE:
            keep(client)
            await _close_quietly(client)
            client = None
            continue
        if ack.get("ok"):
            side.acked[client_id] = int(ack["message_id"])
            side.duplicates_acked += bool(ack.get("duplicate"))
            pending.pop(0)
        await asyncio.sleep(0.15)
        keep(client)
    assert client is not None
    await asyncio.sleep(2)
    keep(client)
    await client.close()


async def stored_with_client_ids(db_url: str, session_id: str) -> list[tuple[int, str, str | None]]:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            rows = await s.execute(
                select(Message.id, Message.sender, Message.client_id).where(Message.conversation_id == session_id)
            )
            return [(int(i), str(sender), client_id) for i, sender, client_id in rows]
    finally:
        await engine.dispose()


async def test_relay_restart_mid_human_chat_loses_and_doubles_nothing(warmline: Warmline, token: str) -> None:
    customer, ada, ticket_id = await seated_chat(warmline.relay_url, token)
    session_id = customer.session_id
    assert session_id is not None
    await customer.close()
    await ada.close()
    customer_view, agent_view = Side({}, {}), Side({}, {})
    acked_enough = asyncio.Event()
    restarts_before = warmline.said().count("relay is back")
    sides = asyncio.gather(
        customer_side(warmline.relay_url, session_id, customer_view, acked_enough),
        agent_side(warmline.relay_url, token, ticket_id, agent_view, acked_enough),
    )
    await asyncio.wait_for(acked_enough.wait(), 30)
    killed = warmline.pid("relay")
    os.kill(killed, signal.SIGKILL)
    await asyncio.wait_for(sides, 180)
    await warmline.wait_said("relay is back", restarts_before + 1, timeout_s=10)
    assert warmline.pid("relay") != killed

    stored = await stored_with_client_ids(Settings(state_dir=warmline.state_dir).db_url, session_id)
    ours = [(i, sender, cid) for i, sender, cid in stored if cid and cid[:2] in ("c-", "a-")]
    by_client_id: dict[str, list[int]] = {}
    for message_id, _sender, client_id in ours:
        by_client_id.setdefault(str(client_id), []).append(message_id)
    sent = {f"c-{i}" for i in range(MESSAGES_EACH)} | {f"a-{i}" for i in range(MESSAGES_EACH)}
    lost = sent - set(by_client_id)
    doubled = {cid: ids for cid, ids in by_client_id.items() if len(ids) > 1}
    print(
        f"relay SIGKILLed mid chat: {len(sent)} messages sent, {len(lost)} lost, {len(doubled)} doubled; "
        f"resent after the outage: customer {customer_view.resent}, agent {agent_view.resent}; acked as "
        f"duplicates: {customer_view.duplicates_acked + agent_view.duplicates_acked}; reconnects: "
        f"{customer_view.reconnects}, {agent_view.reconnects}"
    )
    assert lost == set() and doubled == {}
    assert customer_view.reconnects >= 2 and agent_view.reconnects >= 2  # both really went through the outage
    # Each side acknowledged every message once, with the id it was stored under...
    for view, prefix in ((customer_view, "c-"), (agent_view, "a-")):
        assert {cid for cid in by_client_id if cid.startswith(prefix)} == set(view.acked)
        assert all(by_client_id[cid] == [mid] for cid, mid in view.acked.items())
    # ... and saw every message of the other side, live or in the history its reconnect brought, each under one id.
    agent_ids = {mid for cid, mid in agent_view.acked.items()}
    customer_ids = {mid for cid, mid in customer_view.acked.items()}
    assert set(customer_view.seen) >= agent_ids, sorted(agent_ids - set(customer_view.seen))
    assert set(agent_view.seen) >= customer_ids, sorted(customer_ids - set(agent_view.seen))
