"""Load and scale-out figures (issue 15), loopback only, each beside a reference measured in the same run.

    .venv/bin/python bench/load.py [--sections a b c d e] [--seconds 6] [--refine 3] [--pairs 50 500] [--messages 10]
                                   [--on-screen first]
                                   [--sockets 10000] [--processes 1 2 4] [--process-repeats 3]
                                   [--json bench/results/load.json]

a. Bot phase: closed-loop customers (10, 50, 100, 200 at once) each sending a KB question and waiting for the turn,
   through the relay (Socket.IO, stored) and straight to Rasa's REST channel: turns/s, p50, p99; the sustainable
   turns/s (the best level whose p99 is under 500 ms) of each, and their ratio (target >= 0.95). Then, per path,
   --refine more levels (default 3) halving the gap between its best level under 500 ms and the next one measured
   above it, the same search on both paths; the ratio at the four levels alone is reported too.
b. Escalation at 70 % of the relay's sustainable bot turns/s (from a): escalating message -> agent gets the ticket
   (target p99 <= 250 ms), accept -> transcript (target p99 <= 50 ms); beside it Rasa REST turns probed at the same
   time (the bot's own latency at that load).
c. Human phase: N customer/agent pairs (every send acknowledged, --messages each way per pair, one agent socket per
   50 chats) through one relay process, and the same clients and traffic through a bare python-socketio room relay
   (bench/bare_relay.py): messages/s, one-way p50/p99; targets >= 70 % of the bare throughput, p99 <= 2x the
   bare p99; every message stored once; CPU ms per relayed message of the relay, of Rasa and of the bare relay.
   Each Warmline agent socket has one of its chats on screen and asks the copilot's suggestions for that chat's
   customer messages as the console does (`suggest`); the bare relay has no such event. --on-screen all: every
   chat is on screen, every customer message asked for (the copilot's worst case).
d. --sockets idle customer sockets (Engine.IO over WebSocket, session_request answered) on one relay process and
   on the bare relay: resident memory per socket (target <= 50 KB) and connect rate.
e. 1, 2, 4 relay processes on one PostgreSQL database and one Redis, pairs spread so each customer's agent is on
   another process: CPU seconds per 1,000 relayed messages summed over every relay process, and Redis's own
   (target at 4 processes <= 1.3x the 1-process figure); --process-repeats runs of the same traffic per count, the
   median kept (every run's figure beside it).

The machine's load average before and after each section is recorded: on a shared 2-core box the absolute
figures move with the neighbours' load; the ratios against the reference, measured in the same minutes, much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from harness import ROOT, closed_loop, freeze_client_heap, kb_questions, print_table, summary_ms, write_json
from pydantic import BaseModel
from socketio import AsyncRedisManager, AsyncServer
from sqlalchemy import func, select, update

from common.db import create_engine, session_factory
from common.settings import normalize_db_url
from handoff.auth import create_agent
from handoff.models import Agent, CopilotSuggestion, Message
from tests import services
from tests.agent_client import AgentClient, login
from tests.chat_client import Customer
from tests.stack import Stack, free_port, running_stack, settings_env
from warmline.migrate import upgrade
from warmline.processes import Service, Supervisor
from warmline.processes import services as service_list

LEVELS = (10, 50, 100, 200)
SUSTAINABLE_P99_MS = 500.0
CHATS_PER_AGENT_SOCKET = 50
CALL_TIMEOUT_S = 120.0  # an overloaded relay is measured slow, not failed
CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-password-1"
SERVICES = {"relay": "relay", "rasa": "rasa", "actions": "action server"}  # CPU accounted per bot turn in a


# --- process accounting -------------------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def redis_cpu_s() -> float:
    done = subprocess.run(["redis-cli", "-p", "6379", "info", "cpu"], capture_output=True, text=True, timeout=10)
    values = dict(line.split(":", 1) for line in done.stdout.split() if ":" in line)
    return float(values["used_cpu_sys"]) + float(values["used_cpu_user"])


async def pg_stats(db_name: str) -> dict[str, int]:
    """PostgreSQL's own counters for one database: transactions and rows written and read."""
    import asyncpg

    conn = await asyncpg.connect(services.PG_URL)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_fetched FROM pg_stat_database WHERE datname = $1",
            db_name,
        )
        await conn.execute("SELECT pg_stat_clear_snapshot()")
    finally:
        await conn.close()
    assert row is not None
    return {key: int(row[key]) for key in ("xact_commit", "tup_inserted", "tup_updated", "tup_fetched")}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def pids_of(supervisor: Supervisor, name: str) -> list[int]:
    return [r.proc.pid for r in supervisor.runs if r.service.name == name and r.proc is not None]


async def settled(pid: int, busy_below: float = 0.05, window_s: float = 2.0, limit_s: float = 120.0) -> float:
    """Wait until a process uses under ``busy_below`` of a core over ``window_s`` (the action server tunes its
    encoder on the KB in the background after it starts); returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = cpu_s(pid)
        await asyncio.sleep(window_s)
        if (cpu_s(pid) - before) / window_s < busy_below:
            break
    return round(time.monotonic() - started, 1)


class _CountingRedisManager(AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, counting the emits it handles from other processes."""

    handled = 0

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        type(self).handled += 1
        await super()._handle_emit(message)


async def foreign_emit_cost_us(count: int = 20_000) -> tuple[float, float]:
    """CPU microseconds a relay process spends on one emit that another process published for a room this one has
    no member of: AsyncRedisManager receives it from Redis, decodes it and looks the room up. With one channel for
    everything, every process pays this for every emit of every other process. Measured in this process with
    redis-cli publishing from its own process."""
    channel = f"warmline-bench-{uuid.uuid4().hex[:8]}"
    server = AsyncServer(async_mode="asgi", client_manager=_CountingRedisManager(services.REDIS_URL, channel=channel))
    manager = server.manager
    manager.initialize()
    message = {
        "method": "emit", "event": "chat_message", "namespace": "/agent", "room": f"chat:{uuid.uuid4().hex}",
        "data": [{"ticket_id": 123, "message": {"id": 456789, "sender": "customer", "text": "x" * 80,
                  "client_id": uuid.uuid4().hex, "created_at": "2026-12-01T10:00:00+00:00"}}],
        "binary": False, "skip_sid": None, "callback": None, "host_id": uuid.uuid4().hex,
    }  # fmt: skip
    while manager.redis is None or not (await manager.redis.pubsub_numsub(channel))[0][1]:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # the listener connects and subscribes
    _CountingRedisManager.handled = 0
    started, redis_before = time.process_time(), redis_cpu_s()
    publisher = await asyncio.create_subprocess_exec(
        "redis-cli", "-p", "6379", "-r", str(count), "publish", channel, json.dumps(message),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await publisher.wait()
    deadline = time.monotonic() + 60
    while _CountingRedisManager.handled < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    spent, redis_spent = time.process_time() - started, redis_cpu_s() - redis_before
    handled = _CountingRedisManager.handled
    for task in asyncio.all_tasks():  # the manager's listener
        if task is not asyncio.current_task():
            task.cancel()
    assert handled == count, f"{handled} of {count} emits arrived"
    # (the subscriber's CPU per emit, Redis's CPU per publish delivered to one subscriber)
    return round(spent / count * 1e6, 1), round(redis_spent / count * 1e6, 1)


# --- a: the bot phase's capacity curve ------------------------------------------------------------------------------


async def bot_curve(stack: Stack, seconds: float, levels: list[int], refine: int) -> dict[str, Any]:
    """The curve at ``levels`` on both paths, then for each path up to ``refine`` more levels, halving the gap between
    its best level with p99 under the limit and the next level above it (the same search on both paths): the
    sustainable figure lies somewhere in that gap, and the issue's four levels alone would place it only to within
    a factor of 2-5 of concurrency."""
    texts = kb_questions(stack.settings.kb_path)
    rest_url = f"{stack.settings.rasa_url}/webhooks/rest/webhook"
    rows: list[dict[str, Any]] = []
    pids = {name: pids_of(stack.supervisor, service)[0] for name, service in SERVICES.items()}

    async def run_level(level: int, paths: tuple[str, ...], refining: bool) -> None:
        # A session per level: Sanic closes keep-alive connections idle for 5 s (the relay path's run), and a POST
        # on one it closed fails with a reset instead of being retried.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            customers = [Customer(stack.relay_url) for _ in range(level)] if "relay" in paths else []
            await asyncio.gather(*(c.connect() for c in customers))
            freeze_client_heap()

            def rest_worker(sender: str) -> Callable[[str], Awaitable[None]]:
                async def turn(text: str) -> None:
                    async with http.post(rest_url, json={"sender": sender, "message": text}) as reply:
                        assert reply.status == 200 and await reply.json()

                return turn

            for path in paths:
                if path == "relay":
                    workers: list[Callable[[str], Awaitable[None]]] = [c.turn for c in customers]
                else:
                    workers = [rest_worker(f"load-{uuid.uuid4().hex}") for _ in range(level)]
                before = {name: cpu_s(pid) for name, pid in pids.items()}
                client_before = time.process_time()
                samples, elapsed = await closed_loop(workers, texts, seconds)
                cpu_ms = {
                    f"{name}_cpu_ms_per_turn": round((cpu_s(pid) - before[name]) / len(samples) * 1000, 2)
                    for name, pid in pids.items()
                }
                # The bench's own clients share the two cores: what each path's client costs is reported beside them.
                cpu_ms["client_cpu_ms_per_turn"] = round((time.process_time() - client_before) / len(samples) * 1000, 2)
                rows.append(
                    {"path": path, "customers": level, "turns_per_s": round(len(samples) / elapsed, 1),
                     **summary_ms(samples), **cpu_ms, "refining": refining}
                )  # fmt: skip
            await asyncio.gather(*(c.close() for c in customers))

    for level in levels:
        await run_level(level, PATHS, refining=False)
    for path in PATHS:
        for _ in range(refine):
            gap = sustainable_gap([r for r in rows if r["path"] == path])
            if gap is None:
                break
            await run_level((gap[0] + gap[1]) // 2, (path,), refining=True)
    at_levels = [r for r in rows if not r["refining"]]
    return derive_a({"levels": rows, "sustainable_turns_per_s": sustainable_of(rows),
                     "sustainable_at_issue_levels": sustainable_of(at_levels), "target": ">= 0.95"})  # fmt: skip


PATHS = ("relay", "rasa_rest")


def sustainable_gap(rows: list[dict[str, Any]]) -> tuple[int, int] | None:
    """(best level under the p99 limit, or 1, and the next level measured above it), if a level fits between."""
    fine = [r["customers"] for r in rows if r["p99_ms"] < SUSTAINABLE_P99_MS]
    low = max(fine, default=1)
    above = [r["customers"] for r in rows if r["customers"] > low]
    if not above or min(above) - low < 2:
        return None
    return low, min(above)


def sustainable_of(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {
        path: max(
            (r["turns_per_s"] for r in rows if r["path"] == path and r["p99_ms"] < SUSTAINABLE_P99_MS), default=0.0
        )
        for path in PATHS
    }


def derive_a(a: dict[str, Any]) -> dict[str, Any]:
    """The ratios of a: sustainable (p99 under 500 ms) and peak turns/s, relay over Rasa REST."""
    sustainable = a["sustainable_turns_per_s"]
    a["relay_over_rasa"] = (
        round(sustainable["relay"] / sustainable["rasa_rest"], 3) if sustainable["rasa_rest"] else None
    )
    if at_levels := a.get("sustainable_at_issue_levels"):
        a["relay_over_rasa_at_issue_levels"] = (
            round(at_levels["relay"] / at_levels["rasa_rest"], 3) if at_levels["rasa_rest"] else None
        )
    peak = {p: max(r["turns_per_s"] for r in a["levels"] if r["path"] == p) for p in PATHS}
    a["peak_turns_per_s"] = peak
    a["peak_relay_over_rasa"] = round(peak["relay"] / peak["rasa_rest"], 3)
    return a


# --- b: escalation at 70 % of the bot capacity ---------------------------------------------------------------------


async def escalation_at(stack: Stack, capacity: float, seconds: float) -> dict[str, Any]:
    """Bot turns at 70 % of ``capacity`` turns/s, a tenth of them escalations."""
    turns_per_s = capacity * 0.7
    sys.path.insert(0, str(ROOT / "bench"))
    from escalation import CHAT_INTERVAL_S, Arrivals, acceptor, agent_for, chatter, connected, escalate_paced

    rate = max(1.0, round(turns_per_s * 0.1, 1))  # a tenth of the load escalates, the rest chats with the bot
    chatters = max(1, round((turns_per_s - rate) * CHAT_INTERVAL_S))
    agent = await agent_for(stack)
    arrivals = Arrivals(agent)
    talkers = await connected(stack.relay_url, chatters)
    escalators = await connected(stack.relay_url, int(rate * seconds))
    freeze_client_heap()
    stop = asyncio.Event()
    accept_s: list[float] = []
    probe_s: list[float] = []
    chat_tasks = [asyncio.create_task(chatter(c, stop, i * CHAT_INTERVAL_S / chatters)) for i, c in enumerate(talkers)]
    accepting = asyncio.create_task(acceptor(agent, arrivals, accept_s, stop))

    async def probe() -> None:  # Rasa's own turn latency at this load, two turns a second
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                began = time.perf_counter()
                body = {"sender": f"probe-{uuid.uuid4().hex}", "message": "what are your support hours"}
                async with http.post(f"{stack.settings.rasa_url}/webhooks/rest/webhook", json=body) as reply:
                    await reply.read()
                probe_s.append(time.perf_counter() - began)
                await asyncio.sleep(0.5)

    await asyncio.sleep(CHAT_INTERVAL_S)
    probing = asyncio.create_task(probe())
    escalation_s = await escalate_paced(escalators, rate, arrivals)
    stop.set()
    sent = sum(await asyncio.gather(*chat_tasks))
    await accepting
    await probing
    await asyncio.gather(*(c.close() for c in [*talkers, *escalators]))
    await agent.close()
    return {
        "bot_turns_per_s_offered": round(chatters / CHAT_INTERVAL_S + rate, 1),
        "capacity_turns_per_s": capacity,
        "of_capacity": round((chatters / CHAT_INTERVAL_S + rate) / capacity, 2),
        "escalations_per_s": rate,
        "chatters": chatters,
        "chat_messages": sent,
        "escalation_to_agent": summary_ms(escalation_s),
        "accept_to_transcript": summary_ms(accept_s),
        "rasa_rest_probe": summary_ms(probe_s),
        "targets": {"escalation_p99_ms": 250, "accept_p99_ms": 50},
    }


# --- c and e: the human phase ---------------------------------------------------------------------------------------


async def set_capacity(db_url: str, usernames: list[str], capacity: int) -> None:
    engine = create_engine(db_url)
    async with session_factory(engine)() as s, s.begin():
        await s.execute(update(Agent).where(Agent.username.in_(usernames)).values(capacity=capacity))
    await engine.dispose()


async def agent_tokens(db_url: str, relay_url: str, count: int, prefix: str) -> list[str]:
    engine = create_engine(db_url)
    names = [f"{prefix}{i}" for i in range(count)]
    async with session_factory(engine)() as s, s.begin():
        for name in names:
            await create_agent(s, name, name.title(), PASSWORD)
    await engine.dispose()
    await set_capacity(db_url, names, 10_000)
    tokens = []
    for name in names:
        status, body = await login(relay_url, name, PASSWORD)
        assert status == 200, body
        tokens.append(body["token"])
    return tokens


@dataclass
class Pair:
    customer: Customer
    agent: AgentClient
    ticket_id: int = 0  # Warmline: the ticket; the bare relay: unused


@dataclass
class Wire:
    """Arrival times of the traffic's messages, matched by their unique text, at both ends."""

    to_agent: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    to_customer: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    # Warmline: the chat each agent socket has on screen, whose customer messages its console asks suggestions
    # for (handoff/copilot.py: only what an agent looks at is ranked); the asks in flight.
    on_screen: dict[int, AgentClient] = field(default_factory=dict)
    asks: set[asyncio.Task[Any]] = field(default_factory=set)

    def expect(self, box: dict[str, asyncio.Future[float]], text: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        box[text] = future
        return future

    def arrived(self, box: dict[str, asyncio.Future[float]], text: str | None) -> None:
        now = time.perf_counter()
        future = box.pop(text or "", None)
        if future is not None and not future.done():
            future.set_result(now)

    def listen(self, customer: Customer, agent: AgentClient) -> None:
        customer.sio.on("bot_uttered", lambda data: self.arrived(self.to_customer, data.get("text")))
        agent.sio.on("chat_message", self._at_agent, namespace="/agent")

    def _at_agent(self, data: dict[str, Any]) -> None:
        message = data["message"]
        self.arrived(self.to_agent, message.get("text"))
        agent = self.on_screen.get(data.get("ticket_id", 0))
        if agent is not None and message.get("sender") == "customer":  # as the console does, off the handler
            ask = {"ticket_id": data["ticket_id"], "message_id": message["message_id"]}
            task = asyncio.get_running_loop().create_task(agent.call("suggest", ask))
            self.asks.add(task)
            task.add_done_callback(self.asks.discard)


async def in_chunks(items: list[Any], size: int, run: Callable[[Any], Awaitable[Any]]) -> list[Any]:
    done: list[Any] = []
    for start in range(0, len(items), size):
        done.extend(await asyncio.gather(*(run(item) for item in items[start : start + size])))
    return done


async def warmline_pairs(customer_urls: list[str], agents: list[AgentClient]) -> list[Pair]:
    """Customers escalate through the bot (in chunks of 50) and agent ``i % len(agents)`` accepts pair i."""
    tickets: dict[str, asyncio.Future[dict[str, Any]]] = {}
    loop = asyncio.get_running_loop()

    def on_ticket(ticket: dict[str, Any]) -> None:
        future = tickets.get(ticket["conversation_id"])
        if future is not None and not future.done():
            future.set_result(ticket)

    for agent in agents:
        agent.sio.on("ticket_waiting", on_ticket, namespace="/agent")
    customers = [Customer(url) for url in customer_urls]
    await in_chunks(customers, 100, lambda c: c.connect())

    async def escalate(customer: Customer) -> dict[str, Any]:
        assert customer.session_id is not None
        tickets[customer.session_id] = loop.create_future()
        await customer.say("/human")
        return await asyncio.wait_for(tickets[customer.session_id], 120)

    waiting = await in_chunks(customers, 50, escalate)
    pairs = [
        Pair(c, agents[i % len(agents)], t["ticket_id"])
        for i, (c, t) in enumerate(zip(customers, waiting, strict=True))
    ]

    async def accept(pair: Pair) -> None:
        ack = await pair.agent.call("accept", {"ticket_id": pair.ticket_id})
        assert ack["ok"], ack

    await in_chunks(pairs, 50, accept)
    await asyncio.sleep(1.0)  # the "joined" notices and queue updates are out before the traffic starts
    return pairs


async def bare_pairs(url: str, agents: list[AgentClient], count: int) -> list[Pair]:
    customers = [Customer(url) for _ in range(count)]
    await in_chunks(customers, 100, lambda c: c.connect())
    pairs = [Pair(c, agents[i % len(agents)]) for i, c in enumerate(customers)]
    await in_chunks(pairs, 100, lambda p: p.agent.call("join", {"room": p.customer.session_id}))
    return pairs


async def traffic(
    pairs: list[Pair], messages: int, bare: bool, run_id: str, on_screen: str = "first"
) -> dict[str, Any]:
    """Every pair in turn: the customer says something (acked), the agent gets it, answers (acked), the customer
    gets that; ``messages`` each way, all pairs at once. One-way latency: send -> the other side's handler.
    ``on_screen``: one chat in 50 is on its agent's screen, each the first chat of another agent socket (``first``:
    a console each; the same count whatever the number of sockets, so that e's counts carry the same asks), or
    every chat (``all``: the copilot asked for every customer message, its worst case)."""
    wire = Wire()
    screens = math.ceil(len(pairs) / CHATS_PER_AGENT_SOCKET)
    for pair in pairs:
        wire.listen(pair.customer, pair.agent)
        if bare:
            continue
        if on_screen == "all" or (len(wire.on_screen) < screens and pair.agent not in wire.on_screen.values()):
            wire.on_screen[pair.ticket_id] = pair.agent
    freeze_client_heap()
    one_way: list[float] = []

    async def talk(index: int, pair: Pair) -> None:
        await asyncio.sleep(index * 0.002)  # a 1 s ramp over 500 pairs, not one thundering instant
        for i in range(messages):
            text = f"customer {index} says {i} {run_id}"
            got = wire.expect(wire.to_agent, text)
            began = time.perf_counter()
            said = {"message": text, "session_id": pair.customer.session_id, "client_id": f"{run_id}-c{index}-{i}"}
            ack = await pair.customer.sio.call("user_uttered", said, timeout=CALL_TIMEOUT_S)
            assert ack["ok"], ack
            one_way.append(await asyncio.wait_for(got, 60) - began)
            text = f"agent {index} says {i} {run_id}"
            got = wire.expect(wire.to_customer, text)
            began = time.perf_counter()
            body: dict[str, Any] = {"text": text, "client_id": f"{run_id}-a{index}-{i}"}
            body.update({"room": pair.customer.session_id} if bare else {"ticket_id": pair.ticket_id})
            ack = await pair.agent.sio.call("agent_message", body, namespace="/agent", timeout=CALL_TIMEOUT_S)
            assert ack["ok"], ack
            one_way.append(await asyncio.wait_for(got, 60) - began)

    started = time.perf_counter()
    await asyncio.gather(*(talk(i, p) for i, p in enumerate(pairs)))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*wire.asks)  # the consoles' last asks for suggestions
    return {"messages": len(one_way), "seconds": round(elapsed, 2), "messages_per_s": round(len(one_way) / elapsed, 1),
            **summary_ms(one_way)}  # fmt: skip


async def stored_once(db_url: str, run_id: str) -> dict[str, int]:
    engine = create_engine(db_url)
    async with session_factory(engine)() as s:
        rows = await s.scalar(select(func.count()).select_from(Message).where(Message.client_id.like(f"{run_id}-%")))
        distinct = await s.scalar(
            select(func.count(func.distinct(Message.client_id))).where(Message.client_id.like(f"{run_id}-%"))
        )
        # Customer messages that got the copilot's suggestions (under load a chat's waiting one is superseded by
        # its next: docs/copilot.md).
        suggested = await s.scalar(
            select(func.count(func.distinct(CopilotSuggestion.message_id)))
            .join(Message, Message.id == CopilotSuggestion.message_id)
            .where(Message.client_id.like(f"{run_id}-%"))
        )
    await engine.dispose()
    return {"rows": int(rows or 0), "distinct_client_ids": int(distinct or 0), "suggested": int(suggested or 0)}


class BareRelay:
    """bench/bare_relay.py in its own process, on a free port."""

    def __init__(self, scratch: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (scratch / f"bare-relay-{self.port}.log").open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, str(ROOT / "bench" / "bare_relay.py"), str(self.port)]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not services.reachable("127.0.0.1", self.port):
            assert self.proc.poll() is None, "the bare relay exited at start"
            assert time.monotonic() < deadline, "the bare relay did not start"
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # Sanic's graceful stop with thousands of sockets open can take longer
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class HumanRun(BaseModel):
    pairs: int
    messages_each_way: int
    on_screen: str  # which chats the agent sockets ask the copilot's suggestions for (traffic's ``on_screen``)
    relay: dict[str, Any]
    relay_no_copilot: dict[str, Any]
    bare: dict[str, Any]
    throughput_of_bare: float
    p99_over_bare: float
    stored: dict[str, int]
    relay_cpu_ms_per_message: float
    rasa_cpu_ms_per_message: float
    actions_cpu_ms_per_message: float  # the copilot's suggestions for each customer message are ranked there
    bare_cpu_ms_per_message: float
    no_copilot_throughput_of_bare: float
    no_copilot_p99_over_bare: float
    no_copilot_relay_cpu_ms_per_message: float
    no_copilot_actions_cpu_ms_per_message: float
    targets: dict[str, str] = {"throughput_of_bare": ">= 0.70", "p99_over_bare": "<= 2.0", "stored": "once each"}


async def relay_traffic(
    stack: Stack, url: str, relay_pid: int, pairs: int, messages: int, run_id: str, on_screen: str = "first"
) -> tuple[dict[str, Any], dict[str, float]]:
    """The human-phase traffic through one Warmline relay process: its figures and the CPU seconds each of the
    relay, Rasa and the action server spent on it."""
    pids = {"relay": relay_pid, "rasa": pids_of(stack.supervisor, "rasa")[0],
            "actions": pids_of(stack.supervisor, "action server")[0]}  # fmt: skip
    tokens = await agent_tokens(stack.settings.db_url, url, math.ceil(pairs / CHATS_PER_AGENT_SOCKET), f"{run_id}agent")
    agents = [AgentClient(url) for _ in tokens]
    for agent, token in zip(agents, tokens, strict=True):
        await agent.connect(token)
    chats = await warmline_pairs([url] * pairs, agents)
    # Every accept brings the copilot's suggestions for the chat's question (ranked on the action server, sent to
    # the agent and stored by the relay): accept's work, not the human phase's, so none of it may run into the
    # traffic (500 rankings at about 7 ms each are seconds of a core; in the runs so far they had finished).
    figures_before = {"accepts_settled_after_s": await settled(pids["actions"], window_s=0.5)}
    figures_before["relay_settled_after_s"] = await settled(pids["relay"], window_s=0.5)
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    figures = {**figures_before, **await traffic(chats, messages, bare=False, run_id=run_id, on_screen=on_screen)}
    # The copilot ranks after each message has arrived: wait until the action server is idle again, so its CPU
    # holds all the work this traffic caused and none of it runs into the next measurement.
    figures["actions_settled_after_s"] = await settled(pids["actions"], window_s=0.5)
    spent = {name: cpu_s(pid) - before[name] for name, pid in pids.items()}
    for pair in chats:
        await pair.customer.close()
    for agent in agents:
        await agent.close()
    return figures, spent


async def human_phase(stack: Stack, scratch: Path, pairs: int, messages: int, on_screen: str = "first") -> HumanRun:
    sockets = math.ceil(pairs / CHATS_PER_AGENT_SOCKET)
    run_id = f"ld{uuid.uuid4().hex[:8]}"
    relay, cpu = await relay_traffic(stack, stack.relay_url, pids_of(stack.supervisor, "relay")[0], pairs, messages,
                                     run_id, on_screen)  # fmt: skip
    stored = await stored_once(stack.settings.db_url, run_id)
    # The same traffic through a relay process with the copilot off (WARMLINE_COPILOT=false): the relay's own cost.
    plain_url = stack.add_relay(copilot=False)
    plain_run = stack.supervisor.runs[-1]
    assert plain_run.proc is not None
    try:
        plain, plain_cpu = await relay_traffic(
            stack, plain_url, plain_run.proc.pid, pairs, messages, run_id + "p", on_screen
        )
    finally:  # only this comparison needs it; the next sections measure the stack's own relay
        plain_run.proc.terminate()
        plain_run.proc.wait(timeout=30)
        stack.supervisor.runs.remove(plain_run)

    bare_relay = BareRelay(scratch)
    try:
        bare_agents = [AgentClient(bare_relay.url) for _ in range(sockets)]
        for agent in bare_agents:
            await agent.connect("bare")
        bare_chats = await bare_pairs(bare_relay.url, bare_agents, pairs)
        before = cpu_s(bare_relay.proc.pid)
        bare = await traffic(bare_chats, messages, bare=True, run_id=run_id + "b")
        bare_cpu = cpu_s(bare_relay.proc.pid) - before
        for pair in bare_chats:
            await pair.customer.close()
        for agent in bare_agents:
            await agent.close()
    finally:
        bare_relay.stop()
    sent = relay["messages"]
    return HumanRun(
        pairs=pairs, messages_each_way=messages, on_screen=on_screen, relay=relay, relay_no_copilot=plain, bare=bare,
        throughput_of_bare=round(relay["messages_per_s"] / bare["messages_per_s"], 3),
        p99_over_bare=round(relay["p99_ms"] / bare["p99_ms"], 2), stored={"sent": sent, **stored},
        relay_cpu_ms_per_message=round(cpu["relay"] / sent * 1000, 3),
        rasa_cpu_ms_per_message=round(cpu["rasa"] / sent * 1000, 3),
        actions_cpu_ms_per_message=round(cpu["actions"] / sent * 1000, 3),
        bare_cpu_ms_per_message=round(bare_cpu / bare["messages"] * 1000, 3),
        no_copilot_throughput_of_bare=round(plain["messages_per_s"] / bare["messages_per_s"], 3),
        no_copilot_p99_over_bare=round(plain["p99_ms"] / bare["p99_ms"], 2),
        no_copilot_relay_cpu_ms_per_message=round(plain_cpu["relay"] / plain["messages"] * 1000, 3),
        no_copilot_actions_cpu_ms_per_message=round(plain_cpu["actions"] / plain["messages"] * 1000, 3),
    )  # fmt: skip


# --- d: idle sockets ------------------------------------------------------------------------------------------------


async def idle_socket(http: aiohttp.ClientSession, url: str, hold: asyncio.Event, ready: Callable[[], None]) -> None:
    """One customer as the widget opens it: Engine.IO over WebSocket, the "/" namespace, session_request answered;
    then idle, answering the server's pings, until ``hold`` is set. The protocol by hand, so that 10,000 of them
    fit in the bench's own process (one python-socketio client each would not)."""
    ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket", heartbeat=None, max_msg_size=0)
    try:
        assert (await ws.receive_str()).startswith("0")  # Engine.IO open
        await ws.send_str("40")
        assert (await ws.receive_str()).startswith("40")  # namespace connected
        await ws.send_str('42["session_request",{"session_id":null,"customData":{}}]')
        while not (message := await ws.receive_str()).startswith('42["session_confirm"'):
            if message == "2":
                await ws.send_str("3")
        ready()
        while not hold.is_set():
            try:
                message = await asyncio.wait_for(ws.receive_str(), 1.0)
            except TimeoutError:
                continue
            if message == "2":
                await ws.send_str("3")
    finally:
        await ws.close()


async def idle_sockets_on(url: str, pid: int, count: int, limit_s: float) -> dict[str, Any]:
    hold = asyncio.Event()
    connected = 0
    all_in: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def ready() -> None:
        nonlocal connected
        connected += 1
        if connected == count and not all_in.done():
            all_in.set_result(None)

    before = rss_kb(pid)
    limit = asyncio.Semaphore(200)  # connects in flight at once

    async def one(http: aiohttp.ClientSession) -> None:
        async with limit:
            opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def done() -> None:
                ready()
                opened.set_result(None)

            task = asyncio.create_task(idle_socket(http, url, hold, done))
            await asyncio.wait([task, opened], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[list-item]
            if task.done():
                task.result()  # the socket failed before it was in: say why
        await task

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        started = time.perf_counter()
        tasks = [asyncio.create_task(one(http)) for _ in range(count)]
        try:  # bounded in time: on a busy shared box fewer may be in when the time is up; they are what is measured
            await asyncio.wait_for(asyncio.shield(all_in), limit_s)
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - started
        reached = connected
        await asyncio.sleep(3)  # settled: the server's per-socket tasks and buffers are in place
        after = rss_kb(pid)
        hold.set()
        for task in tasks:  # those still waiting to connect (time was up) are not needed any more
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "sockets": reached, "asked": count, "connect_s": round(elapsed, 2),
        "connects_per_s": round(reached / elapsed, 1),
        "rss_before_mb": round(before / 1024, 1), "rss_after_mb": round(after / 1024, 1),
        "kb_per_socket": round((after - before) / reached, 2),
    }  # fmt: skip


async def idle(stack: Stack, scratch: Path, count: int, limit_s: float) -> dict[str, Any]:
    relay = await idle_sockets_on(stack.relay_url, pids_of(stack.supervisor, "relay")[0], count, limit_s)
    bare_relay = BareRelay(scratch)
    try:
        bare = await idle_sockets_on(bare_relay.url, bare_relay.proc.pid, relay["sockets"], limit_s)
    finally:
        bare_relay.stop()
    return {"relay": relay, "bare": bare, "target_kb_per_socket": 50}


# --- e: 1, 2, 4 relay processes on one Redis ------------------------------------------------------------------------


def start_relays(stack: Stack, count: int, db_url: str) -> tuple[Supervisor, list[str]]:
    supervisor = Supervisor(stack.settings)
    urls = []
    for _ in range(count):
        settings = stack.settings.model_copy(
            update={"relay_port": free_port(), "database_url": db_url, "redis_url": services.REDIS_URL}
        )
        relay: Service = next(
            s for s in service_list(settings, stack.model, settings_env(settings)) if s.name == "relay"
        )
        supervisor.start(relay)
        urls.append(settings.relay_url)
    return supervisor, urls


async def processes(stack: Stack, counts: list[int], pairs: int, messages: int, repeats: int) -> dict[str, Any]:
    services.require("127.0.0.1", 6379, "Redis")
    pg_url, db_name = await services.create_pg_database()
    db_url = normalize_db_url(pg_url)
    upgrade(db_url)
    rows = []
    try:
        for count in counts:
            supervisor, urls = start_relays(stack, count, pg_url)
            try:
                run_id = f"px{count}{uuid.uuid4().hex[:6]}"
                agent_count = max(count, math.ceil(pairs / CHATS_PER_AGENT_SOCKET))
                tokens = await agent_tokens(db_url, urls[0], agent_count, f"{run_id}agent")
                agents = [AgentClient(urls[i % count]) for i in range(agent_count)]
                for agent, token in zip(agents, tokens, strict=True):
                    await agent.connect(token)
                # pair i: its agent is agents[i % agent_count], on relay (i % agent_count) % count; the customer
                # goes one process further along, so with 2 or more processes every chat crosses processes.
                customer_urls = [urls[(i % agent_count + 1) % count] for i in range(pairs)]
                chats = await warmline_pairs(customer_urls, agents)
                pids = pids_of(supervisor, "relay")
                runs = []
                for repeat in range(repeats):  # the same chats again: one noisy run on shared cores is not a figure
                    before, redis_before, pg_before = [cpu_s(p) for p in pids], redis_cpu_s(), await pg_stats(db_name)
                    figures = await traffic(chats, messages, bare=False, run_id=f"{run_id}r{repeat}")
                    spent = sum(cpu_s(p) - b for p, b in zip(pids, before, strict=True))
                    redis_spent = redis_cpu_s() - redis_before
                    await asyncio.sleep(1.5)  # backends report their counters within a second of going idle
                    pg_after = await pg_stats(db_name)
                    runs.append({
                        **figures,
                        "relay_cpu_s_per_1000": round(spent / figures["messages"] * 1000, 2),
                        "redis_cpu_s_per_1000": round(redis_spent / figures["messages"] * 1000, 2),
                        **{f"pg_{k}_per_1000": round((pg_after[k] - pg_before[k]) / figures["messages"] * 1000)
                           for k in pg_after},
                        "stored": await stored_once(db_url, f"{run_id}r{repeat}"),
                    })  # fmt: skip
                for pair in chats:
                    await pair.customer.close()
                for agent in agents:
                    await agent.close()
                # The run with the median relay CPU stands for the count; every run's figure is kept beside it.
                median = sorted(runs, key=lambda r: r["relay_cpu_s_per_1000"])[len(runs) // 2]
                rows.append(
                    {"processes": count, **median,
                     "relay_cpu_s_per_1000_runs": [r["relay_cpu_s_per_1000"] for r in runs],
                     "stored": {k: sum(r["stored"][k] for r in runs) for k in ("rows", "distinct_client_ids")},
                     "sent": sum(r["messages"] for r in runs)}
                )  # fmt: skip
            finally:
                supervisor.stop_all()
    finally:
        await services.drop_pg_database(db_name)
    foreign_us, redis_publish_us = await foreign_emit_cost_us()
    base = rows[0]["relay_cpu_s_per_1000"]
    for row in rows:
        row["of_one_process"] = round(row["relay_cpu_s_per_1000"] / base, 2) if base else None
    return {
        "rows": rows,
        "target_at_4": "<= 1.3x the 1-process figure",
        "foreign_emit_cpu_us": foreign_us,
        "redis_cpu_us_per_publish_one_subscriber": redis_publish_us,
    }


# --- the capacity model for docs/deploy.md ---------------------------------------------------------------------------


class Assumptions(BaseModel):
    chats: int = 100_000
    human_share: float = 0.10
    message_interval_s: float = 30.0  # one customer message per chat every 30 s; in the human phase the agent too
    chats_per_agent: int = 3  # the default capacity
    sockets_per_relay: int = 10_000  # as measured in d
    utilization: float = 0.7  # cores planned at 70 % busy, for peaks and restarts
    # A message and what goes with it, as the relay emits them (handoff/): to the other side and to the chat's room,
    # the copilot's suggestions to the agent; a bot turn's one or two replies.
    emits_per_message: float = 2.0
    # Room-targeted publishing (handoff/pubsub.py): an emit reaches the processes holding its room other than the
    # sender's; a customer and their agent are on different processes at worst.
    other_processes_per_emit: float = 1.0


def capacity_model(figures: dict[str, Any], a: Assumptions | None = None) -> dict[str, Any]:
    """100,000 concurrent chats from this run's per-process figures; every step kept, for docs/deploy.md."""
    a = a or Assumptions()
    bot_chats, human_chats = a.chats * (1 - a.human_share), a.chats * a.human_share
    turns_per_s = bot_chats / a.message_interval_s
    human_msgs_per_s = human_chats * 2 / a.message_interval_s
    agents = math.ceil(human_chats / a.chats_per_agent)
    sockets = a.chats + agents
    measured = [r for r in figures["a_bot_phase"]["levels"] if not r.get("refining")]  # both paths at each of these
    low = min(measured, key=lambda r: r["customers"])  # the least contended level
    relay_row = next(r for r in measured if r["path"] == "relay" and r["customers"] == low["customers"])
    rest_row = next(r for r in measured if r["path"] == "rasa_rest" and r["customers"] == low["customers"])
    human = max(figures["c_human_phase"], key=lambda r: r["pairs"])
    e_rows = figures["e_processes"]["rows"]
    relay_bot_ms = relay_row["relay_cpu_ms_per_turn"]
    rasa_ms = rest_row["rasa_cpu_ms_per_turn"]
    actions_ms = rest_row["actions_cpu_ms_per_turn"]
    relay_human_ms = human["relay_cpu_ms_per_message"]
    # The cost of many processes on one Redis, measured at the most; never planned below 1 (a run where 4 processes
    # cost less per message than one reflects fuller batches on 2 shared cores, not a saving to count on).
    spread = max(1.0, e_rows[-1]["of_one_process"] or 1.0)
    own_cores = (turns_per_s * relay_bot_ms + human_msgs_per_s * relay_human_ms * spread) / 1000
    # Each emit is decoded by the processes holding its room, not by every process (handoff/pubsub.py).
    foreign_us = figures["e_processes"].get("foreign_emit_cpu_us", 0.0)
    emits_per_s = (turns_per_s + human_msgs_per_s) * a.emits_per_message

    def cores_with(relays: int) -> float:
        return own_cores + emits_per_s * min(relays - 1, a.other_processes_per_emit) * foreign_us / 1e6

    relay_by_sockets = math.ceil(sockets / a.sockets_per_relay)
    relays = relay_by_sockets
    while cores_with(relays) / a.utilization > relays:  # each relay process uses one core at most
        relays += 1
    relay_by_cpu = relays
    relay_cores = cores_with(relays)
    decode_cores = relay_cores - own_cores
    kb_per_socket = figures["d_idle_sockets"]["relay"]["kb_per_socket"]
    base_mb = figures["d_idle_sockets"]["relay"]["rss_before_mb"]
    relay_mem_gb = (relays * base_mb + sockets * kb_per_socket / 1024) / 1024
    rasa_cores = turns_per_s * rasa_ms / 1000
    # The action server: the bot's turns, and the copilot's rankings. A console asks only for the chat on its
    # screen (docs/copilot.md), one of chats_per_agent; the plan still counts one ranking per customer message
    # (half the human phase's messages: an agent who reads every chat as it writes), an upper bound, at c's cost per
    # ranking made (the action server's CPU over the suggestion sets stored).
    rankings = human["stored"].get("suggested")
    per_ranking_ms = human["actions_cpu_ms_per_message"] * human["stored"]["sent"] / rankings if rankings else None
    copilot_ms = per_ranking_ms / 2 if per_ranking_ms else human.get("actions_cpu_ms_per_message", 0.0)
    actions_cores = (turns_per_s * actions_ms + human_msgs_per_s * copilot_ms) / 1000
    rasas = math.ceil(rasa_cores / a.utilization)
    # Redis: one script call per emit plus its deliveries, each at the cost of a publish with one subscriber
    # (measured alone in e, not from Redis's CPU during the traffic, which on this box has other users).
    redis_us = figures["e_processes"].get("redis_cpu_us_per_publish_one_subscriber", 0.0)
    redis_cores = emits_per_s * (1 + a.other_processes_per_emit) * redis_us / 1e6
    pg_xact_per_msg = e_rows[-1].get("pg_xact_commit_per_1000", 0) / 1000
    pg_xact_per_s = human_msgs_per_s * pg_xact_per_msg + turns_per_s * 3  # a bot turn: 3 autocommits (the design)
    return {
        "assumptions": a.model_dump(),
        "bot_turns_per_s": round(turns_per_s), "human_messages_per_s": round(human_msgs_per_s),
        "agent_sockets": agents, "sockets": sockets,
        "relay_cpu_ms_per_bot_turn": relay_bot_ms, "relay_cpu_ms_per_human_message": relay_human_ms,
        "many_process_factor": spread, "relay_own_cores": round(own_cores, 1),
        "foreign_emit_cpu_us": foreign_us, "relay_cores_decoding_others_emits": round(decode_cores, 1),
        "relay_cores": round(relay_cores, 1),
        "relays_by_cpu": relay_by_cpu, "relays_by_sockets": relay_by_sockets, "relays": relays,
        "relay_memory_gb": round(relay_mem_gb, 1),
        "rasa_cpu_ms_per_turn": rasa_ms, "rasa_cores": round(rasa_cores, 1), "rasa_processes": rasas,
        "actions_cpu_ms_per_turn": actions_ms,
        "actions_cpu_ms_per_ranking": round(per_ranking_ms, 2) if per_ranking_ms else None,
        "actions_cpu_ms_per_human_message": round(copilot_ms, 3),
        "actions_cores": round(actions_cores, 1),
        "redis_cores": round(redis_cores, 2), "pg_transactions_per_s": round(pg_xact_per_s),
        "total_cores": round((relay_cores + rasa_cores + actions_cores + redis_cores) / a.utilization, 1),
    }  # fmt: skip


# --- main -----------------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"command": " ".join(["bench/load.py", *sys.argv[1:]]), "load_average": {}}

    def mark(what: str) -> None:
        figures["load_average"][what] = load_average()
        write_json(args.json, figures)  # each section's figures kept as soon as they are in
        print(f"[{time.strftime('%H:%M:%S')}] {what}: load average {figures['load_average'][what]}", flush=True)

    with tempfile.TemporaryDirectory() as scratch_dir, running_stack(Path(scratch_dir)) as stack:
        scratch = Path(scratch_dir)
        figures["action_server_settled_after_s"] = await settled(pids_of(stack.supervisor, "action server")[0])
        mark("start")
        if "a" in args.sections:
            figures["a_bot_phase"] = await bot_curve(stack, args.seconds, args.levels, args.refine)
            mark("after a")
        if "b" in args.sections:
            capacity = (figures.get("a_bot_phase") or {}).get("sustainable_turns_per_s", {}).get(
                "relay"
            ) or args.capacity
            figures["b_escalation"] = await escalation_at(stack, capacity, args.seconds * 2)
            mark("after b")
        if "c" in args.sections:
            figures["c_human_phase"] = []
            for n in args.pairs:
                try:
                    figures["c_human_phase"].append(
                        (await human_phase(stack, scratch, n, args.messages, args.on_screen)).model_dump()
                    )
                except Exception as error:  # kept as a figure: the other sections still run
                    figures.setdefault("errors", {})[f"c {n} pairs"] = repr(error)
            mark("after c")
        if "d" in args.sections:
            figures["d_idle_sockets"] = await idle(stack, scratch, args.sockets, args.socket_seconds)
            mark("after d")
        if "e" in args.sections:
            figures["e_processes"] = await processes(
                stack, args.processes, args.process_pairs, args.messages, args.process_repeats
            )
            mark("after e")
    return figures


def report(figures: dict[str, Any]) -> None:
    if a := figures.get("a_bot_phase"):
        print_table(
            f"a. Bot phase, closed loop (sustainable = best turns/s with p99 < {SUSTAINABLE_P99_MS:.0f} ms): "
            f"relay {a['sustainable_turns_per_s']['relay']}, Rasa REST {a['sustainable_turns_per_s']['rasa_rest']}, "
            f"ratio {a['relay_over_rasa']} (target >= 0.95); peak turns/s relay {a['peak_turns_per_s']['relay']}, "
            f"Rasa REST {a['peak_turns_per_s']['rasa_rest']}, ratio {a['peak_relay_over_rasa']}; at the issue's levels "
            f"alone (no refining): ratio {a.get('relay_over_rasa_at_issue_levels')}",
            a["levels"], ["path", "customers", "refining", "turns_per_s", "n", "p50_ms", "p99_ms", "max_ms",
                          "relay_cpu_ms_per_turn", "rasa_cpu_ms_per_turn", "actions_cpu_ms_per_turn", "client_cpu_ms_per_turn"],
        )  # fmt: skip
    if b := figures.get("b_escalation"):
        rows = [
            {"what": "escalating message -> agent gets ticket", **b["escalation_to_agent"], "target": "p99 <= 250"},
            {"what": "accept -> transcript at agent", **b["accept_to_transcript"], "target": "p99 <= 50"},
            {"what": "reference: Rasa REST turn at this load", **b["rasa_rest_probe"], "target": "-"},
        ]
        print_table(
            f"b. Escalations at {b['escalations_per_s']}/s with {b['chatters']} chatting: {b['bot_turns_per_s_offered']} "
            f"bot turns/s offered ({b['of_capacity']} of the relay's sustainable)",
            rows, ["what", "n", "p50_ms", "p99_ms", "max_ms", "target"],
        )  # fmt: skip
    for c in figures.get("c_human_phase", []):
        rows = [{"server": "warmline relay", **c["relay"]}]
        if "relay_no_copilot" in c:
            rows.append({"server": "warmline relay, copilot off", **c["relay_no_copilot"]})
        rows.append({"server": "bare python-socketio", **c["bare"]})
        print_table(
            f"c. Human phase, {c['pairs']} pairs x {c['messages_each_way']} each way, on screen "
            f"{c.get('on_screen', 'first')}: throughput {c['throughput_of_bare']} "
            f"of bare (target >= 0.70), p99 {c['p99_over_bare']}x bare (target <= 2); stored {c['stored']}; CPU ms/msg: "
            f"relay {c['relay_cpu_ms_per_message']}, Rasa {c['rasa_cpu_ms_per_message']}, action server "
            f"{c.get('actions_cpu_ms_per_message')}, bare {c['bare_cpu_ms_per_message']}; copilot off: throughput "
            f"{c.get('no_copilot_throughput_of_bare')} of bare, p99 {c.get('no_copilot_p99_over_bare')}x, CPU ms/msg "
            f"relay {c.get('no_copilot_relay_cpu_ms_per_message')}, action server "
            f"{c.get('no_copilot_actions_cpu_ms_per_message')}",
            rows, ["server", "messages", "seconds", "messages_per_s", "p50_ms", "p99_ms", "max_ms"],
        )  # fmt: skip
    if d := figures.get("d_idle_sockets"):
        rows = [{"server": "warmline relay", **d["relay"]}, {"server": "bare python-socketio", **d["bare"]}]
        print_table(
            "d. Idle customer sockets on one process (target <= 50 KB per socket)", rows,
            ["server", "sockets", "connect_s", "connects_per_s", "rss_before_mb", "rss_after_mb", "kb_per_socket"],
        )  # fmt: skip
    if e := figures.get("e_processes"):
        print_table(
            "e. Relay processes on one Redis, every chat across processes (target at 4: <= 1.3x one process); "
            "the run with the median CPU of each count's runs",
            e["rows"], ["processes", "messages", "messages_per_s", "p50_ms", "p99_ms", "relay_cpu_s_per_1000",
                        "relay_cpu_s_per_1000_runs", "of_one_process", "redis_cpu_s_per_1000", "pg_xact_commit_per_1000", "pg_tup_inserted_per_1000",
                        "pg_tup_fetched_per_1000"],
        )  # fmt: skip
    if model := figures.get("capacity_model"):
        print("\nCapacity model, 100,000 concurrent chats (docs/deploy.md):")
        for key, value in model.items():
            print(f"  {key}: {value}")
    print(f"\nload average: {figures.get('load_average') or figures.get('runs')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["a", "b", "c", "d", "e"], choices=list("abcde"))
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS), help="customers at once, in a")
    parser.add_argument("--seconds", type=float, default=6.0, help="per level in a; b runs twice as long")
    parser.add_argument("--refine", type=int, default=3, help="extra levels per path in a, narrowing the sustainable")
    parser.add_argument("--capacity", type=float, default=30.0, help="bot turns/s for b when a is not run")
    parser.add_argument("--pairs", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--messages", type=int, default=10, help="each way per pair, in c and e")
    parser.add_argument("--on-screen", choices=["first", "all"], default="first",
                        help="c: the chats whose customer messages the agent sockets ask suggestions for")  # fmt: skip
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--socket-seconds", type=float, default=300.0, help="the most d waits for its sockets")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--process-pairs", type=int, default=50)
    parser.add_argument("--process-repeats", type=int, default=3, help="traffic runs per count in e (median kept)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--model-from", help="only (re)compute the capacity model of a JSON file of this bench")
    args = parser.parse_args()
    if args.model_from:
        figures = json.loads(Path(args.model_from).read_text())
        figures["a_bot_phase"] = derive_a(figures["a_bot_phase"])
        figures["capacity_model"] = capacity_model(figures)
        Path(args.model_from).write_text(json.dumps(figures, indent=2) + "\n")
        report(figures)
        return
    figures = asyncio.run(run(args))
    if all(k in figures for k in ("a_bot_phase", "c_human_phase", "d_idle_sockets", "e_processes")):
        figures["capacity_model"] = capacity_model(figures)
    report(figures)
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
