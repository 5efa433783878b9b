"""Escalation latency under load, with the real stack (Rasa, action server, relay on SQLite).

    .venv/bin/python bench/escalation.py [--rate 10] [--seconds 10] [--chatters 50] [--burst 50] [--json FILE]

Phase 1: escalations arrive at --rate per second for --seconds (each a new customer pressing "Talk to a person",
i.e. sending /human through the bot, whose action packages the ticket) while --chatters other customers chat
with the bot, one message every 2 s each. An agent, connected to /agent, accepts each ticket as it arrives.
Reported: escalating message -> ticket_waiting at the agent (target p99 < 250 ms), and accept -> ticket with the
transcript in the ack (target p99 < 50 ms).
Phase 2: --burst customers escalate at the same instant (no target): how the queue absorbs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import tempfile
import time
from pathlib import Path

from harness import freeze_client_heap, print_table, summary_ms, write_json

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from tests.agent_client import AgentClient, login
from tests.chat_client import Customer
from tests.stack import Stack, running_stack

CHAT_INTERVAL_S = 2.0
CHATTER_TEXTS = ["hello", "how do I reset my password", "thanks", "what are your support hours"]


class Arrivals:
    """Timestamps of ticket_waiting events at the agent, by conversation."""

    def __init__(self, agent: AgentClient) -> None:
        self.seen: dict[str, float] = {}
        self.tickets: asyncio.Queue[dict] = asyncio.Queue()
        self._waiters: dict[str, asyncio.Future[float]] = {}
        agent.sio.on("ticket_waiting", self._on_ticket, namespace="/agent")

    async def _on_ticket(self, ticket: dict) -> None:
        now = time.perf_counter()
        self.seen[ticket["conversation_id"]] = now
        waiter = self._waiters.pop(ticket["conversation_id"], None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)
        await self.tickets.put(ticket)

    def expect(self, conversation_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if conversation_id in self.seen:
            future.set_result(self.seen[conversation_id])
        else:
            self._waiters[conversation_id] = future
        return future


async def escalate(customer: Customer, arrivals: Arrivals) -> float:
    assert customer.session_id is not None
    arrived = arrivals.expect(customer.session_id)
    started = time.perf_counter()
    await customer.say("/human")
    return await asyncio.wait_for(arrived, 30) - started


async def escalate_paced(customers: list[Customer], rate: float, arrivals: Arrivals) -> list[float]:
    """Customer i escalates i / ``rate`` seconds from now (an open loop: a slow relay does not slow the arrivals);
    each one's message -> the agent's ticket."""
    started = time.perf_counter()
    pending = []
    for i, customer in enumerate(customers):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        pending.append(asyncio.create_task(escalate(customer, arrivals)))
    return list(await asyncio.gather(*pending))


async def chatter(customer: Customer, stop: asyncio.Event, offset: float, bot_s: list[float] | None = None) -> int:
    """One bot chat, a message every CHAT_INTERVAL_S until ``stop``; with ``bot_s``, each message waits for the
    bot's first reply and records send -> reply (the same load's yardstick for the bot)."""
    await asyncio.sleep(offset)
    sent = 0
    for text in itertools.cycle(CHATTER_TEXTS):
        if stop.is_set():
            return sent
        if bot_s is None:
            await customer.say(text)
        else:
            while not customer.bot.empty():  # replies to earlier messages are not this one's
                customer.bot.get_nowait()
            started = time.perf_counter()
            await customer.say(text)
            with contextlib.suppress(TimeoutError):
                await customer.next_reply(10)
                bot_s.append(time.perf_counter() - started)
        sent += 1
        try:
            await asyncio.wait_for(stop.wait(), CHAT_INTERVAL_S)
        except TimeoutError:
            pass
    return sent


async def acceptor(agent: AgentClient, arrivals: Arrivals, samples: list[float], stop: asyncio.Event) -> None:
    while not (stop.is_set() and arrivals.tickets.empty()):
        try:
            ticket = await asyncio.wait_for(arrivals.tickets.get(), 0.5)
        except TimeoutError:
            continue
        started = time.perf_counter()
        ack = await agent.call("accept", {"ticket_id": ticket["ticket_id"]})
        elapsed = time.perf_counter() - started
        assert ack["ok"] and ack["ticket"]["messages"], "accept must return the transcript"
        samples.append(elapsed)


async def connected(url: str, n: int) -> list[Customer]:
    customers = [Customer(url) for _ in range(n)]
    await asyncio.gather(*(c.connect() for c in customers))
    return customers


async def agent_for(stack: Stack) -> AgentClient:
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        agent_row = await create_agent(s, "bench", "Bench Agent", "bench-password")
        agent_row.capacity = 10_000  # one agent takes every ticket of the run (the default capacity is 3)
    await engine.dispose()
    _, body = await login(stack.relay_url, "bench", "bench-password")
    agent = AgentClient(stack.relay_url)
    await agent.connect(body["token"])
    return agent


async def run(rate: float, seconds: float, chatters: int, burst: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch, running_stack(Path(scratch)) as stack:
        agent = await agent_for(stack)
        arrivals = Arrivals(agent)
        talkers = await connected(stack.relay_url, chatters)
        escalators = await connected(stack.relay_url, int(rate * seconds))
        freeze_client_heap()
        stop = asyncio.Event()
        accept_s: list[float] = []
        chat_tasks = [
            asyncio.create_task(chatter(c, stop, i * CHAT_INTERVAL_S / chatters)) for i, c in enumerate(talkers)
        ]
        accepting = asyncio.create_task(acceptor(agent, arrivals, accept_s, stop))
        await asyncio.sleep(CHAT_INTERVAL_S)  # chat load is running before the first escalation
        escalation_s = await escalate_paced(escalators, rate, arrivals)
        stop.set()
        sent = sum(await asyncio.gather(*chat_tasks))
        await accepting

        burst_customers = await connected(stack.relay_url, burst)
        burst_s = list(await asyncio.gather(*(escalate(c, arrivals) for c in burst_customers)))
        for customer in [*talkers, *escalators, *burst_customers]:
            await customer.close()
        await agent.close()
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "chatters": chatters,
        "chat_messages_during_load": sent,
        "escalation_to_agent": summary_ms(escalation_s),
        "accept_to_transcript": summary_ms(accept_s),
        "burst": {"size": burst, **summary_ms(burst_s)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chatters", type=int, default=50)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args.rate, args.seconds, args.chatters, args.burst))
    columns = ["what", "n", "p50_ms", "p99_ms", "mean_ms", "max_ms", "target"]
    rows = [
        {"what": "escalating message -> agent gets ticket", **figures["escalation_to_agent"], "target": "p99 < 250"},  # type: ignore[dict-item]
        {"what": "accept -> transcript at agent", **figures["accept_to_transcript"], "target": "p99 < 50"},  # type: ignore[dict-item]
        {"what": f"burst of {args.burst} at once -> agent gets ticket", **figures["burst"], "target": "-"},  # type: ignore[dict-item]
    ]
    print_table(
        f"Escalations at {args.rate}/s for {args.seconds} s with {args.chatters} customers chatting "
        f"({figures['chat_messages_during_load']} chat messages during the load)",
        rows,
        columns,
    )
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
