"""Copilot suggestion latency under load, with the real stack (Rasa, action server, relay on SQLite).

    .venv/bin/python bench/copilot.py [--seconds 60] [--humans 5] [--chatters 50] [--json FILE]

--humans customers are escalated and seated with one agent; each then sends a question every second for
--seconds while --chatters other customers chat with the bot, one message every 2 s each. For every human-phase
message: the customer's send -> the agent gets the message (chat_message), and -> the agent gets its suggestions:
the agent asks for them as the console does for the chat on its screen (``suggest``; here every seated chat counts
as on screen, the most a console asks), ranked by the action server's live retriever, in the acknowledgement. The
target (issue 14) is from the message reaching the relay to the suggestions reaching the agent, p99 <= 150 ms; the
figure reported against it is from the customer's send, so it also counts the customer -> relay hop and the ask's
round trip (an upper bound).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from escalation import CHAT_INTERVAL_S, chatter
from harness import freeze_client_heap, print_table, summary_ms, write_json
from sqlalchemy import update

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.copilot import actions_base_url
from handoff.models import Agent
from tests.agent_client import AgentClient, login
from tests.chat_client import Customer
from tests.stack import running_stack

ASK_INTERVAL_S = 1.0
QUESTIONS = [
    "where can I download my bill as a pdf",
    "how do I change my payment due date",
    "can I add my partner as an authorized user",
    "what happens if I pay my bill late",
    "how do I upgrade to a faster plan",
    "I want to close my account",
    "how much data can I use each month",
    "the charge on my bill looks wrong",
]


class Watch:
    """When each message's chat_message and suggestions reached the agent, by message id."""

    def __init__(self, agent: AgentClient) -> None:
        self.agent = agent
        self.asks: set[asyncio.Task[None]] = set()
        self.relayed: dict[int, float] = {}
        self.suggested: dict[int, float] = {}
        self.sets: dict[int, dict[str, Any]] = {}
        self.tickets: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        agent.sio.on("chat_message", self._message, namespace="/agent")
        agent.sio.on("ticket_waiting", self.tickets.put, namespace="/agent")

    async def _message(self, event: dict[str, Any]) -> None:
        message = event["message"]
        self.relayed.setdefault(message["message_id"], time.perf_counter())
        if message["sender"] == "customer":  # on screen: the console asks (not in the handler: it would block it)
            task = asyncio.create_task(self._ask(event["ticket_id"], message["message_id"]))
            self.asks.add(task)
            task.add_done_callback(self.asks.discard)

    async def _ask(self, ticket_id: int, message_id: int) -> None:
        ack = await self.agent.call("suggest", {"ticket_id": ticket_id, "message_id": message_id})
        got = ack.get("suggestions") if ack.get("ok") else None
        if got is not None:
            self.suggested.setdefault(message_id, time.perf_counter())
            self.sets[message_id] = got


async def asker(customer: Customer, stop: asyncio.Event, offset: float, sent: dict[int, float], k: int) -> None:
    await asyncio.sleep(offset)
    for text in itertools.islice(itertools.cycle(QUESTIONS), k, None):
        if stop.is_set():
            return
        started = time.perf_counter()
        ack = await customer.say(text)
        sent[ack["message_id"]] = started
        try:
            await asyncio.wait_for(stop.wait(), ASK_INTERVAL_S)
        except TimeoutError:
            pass


async def seated(url: str, agent: AgentClient, watch: Watch, n: int) -> list[Customer]:
    humans = [Customer(url) for _ in range(n)]
    await asyncio.gather(*(c.connect() for c in humans))
    for customer in humans:
        await customer.say("/human")
        while True:
            ticket = await asyncio.wait_for(watch.tickets.get(), 30)
            if ticket["conversation_id"] == customer.session_id:
                break
        ack = await agent.call("accept", {"ticket_id": ticket["ticket_id"]})
        assert ack["ok"], ack
    return humans


async def steady_retriever(actions_url: str, limit_s: float) -> tuple[str, float]:
    """Wait until the action server serves the retriever with the encoder fine-tuned on the KB (it trains in the
    background for tens of seconds after start, competing for the cores): the steady state the bot runs in."""
    started = time.monotonic()
    mode = "?"
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - started < limit_s:
            ask = {"requests": [{"text": "hello", "k": 1}]}
            async with http.post(actions_url + "/copilot/suggest", json=ask) as answer:
                mode = (await answer.json())["rankings"][0]["mode"]
            if mode == "tuned":
                break
            await asyncio.sleep(1.0)
    return mode, time.monotonic() - started


async def run(seconds: float, humans: int, chatters: int, steady_s: float) -> dict[str, Any]:
    # The live bot's configuration: the action server fine-tunes the encoder on the KB (tests' stacks leave it off).
    with tempfile.TemporaryDirectory() as scratch, running_stack(Path(scratch), fine_tune=True) as stack:
        mode, waited = await steady_retriever(actions_base_url(stack.settings.actions_url), steady_s)
        print(f"retriever {mode} after {waited:.0f} s", flush=True)
        engine = create_engine(stack.settings.db_url)
        async with session_factory(engine)() as s, s.begin():
            agent_row = await create_agent(s, "bench", "Bench Agent", "bench-password")
            await s.execute(update(Agent).where(Agent.id == agent_row.id).values(capacity=humans + 5))
        await engine.dispose()
        _, body = await login(stack.relay_url, "bench", "bench-password")
        agent = AgentClient(stack.relay_url)
        watch = Watch(agent)
        await agent.connect(body["token"])
        people = await seated(stack.relay_url, agent, watch, humans)
        talkers = [Customer(stack.relay_url) for _ in range(chatters)]
        await asyncio.gather(*(c.connect() for c in talkers))
        freeze_client_heap()
        stop = asyncio.Event()
        bot_s: list[float] = []
        chat_tasks = [
            asyncio.create_task(chatter(c, stop, i * CHAT_INTERVAL_S / chatters, bot_s)) for i, c in enumerate(talkers)
        ]
        await asyncio.sleep(CHAT_INTERVAL_S)  # the chat load runs before the first question
        sent: dict[int, float] = {}
        askers = [
            asyncio.create_task(asker(c, stop, i * ASK_INTERVAL_S / humans, sent, i)) for i, c in enumerate(people)
        ]
        load_before = os.getloadavg()[0]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*askers)
        chat_sent = sum(await asyncio.gather(*chat_tasks))
        await asyncio.sleep(2.0)  # the last suggestions in flight
        load_after = os.getloadavg()[0]
        for customer in [*people, *talkers]:
            await customer.close()
        await agent.close()
    to_suggestions = [watch.suggested[m] - t for m, t in sent.items() if m in watch.suggested]
    to_message = [watch.relayed[m] - t for m, t in sent.items() if m in watch.relayed]
    message_to_suggestions = [
        watch.suggested[m] - watch.relayed[m] for m in sent if m in watch.suggested and m in watch.relayed
    ]
    with_articles = sum(1 for m in sent if watch.sets.get(m, {}).get("articles"))
    return {
        "seconds": seconds,
        "retriever_mode": mode,
        "humans": humans,
        "chatters": chatters,
        "human_messages": len(sent),
        "bot_chat_messages_during_load": chat_sent,
        "missing_suggestions": len(sent) - len(to_suggestions),
        "sets_with_articles": with_articles,
        "load_average_1m": [round(load_before, 2), round(load_after, 2)],
        "send_to_suggestions": summary_ms(to_suggestions),
        "send_to_message": summary_ms(to_message),
        "message_to_suggestions": summary_ms(message_to_suggestions),
        "bot_chat_send_to_reply": summary_ms(bot_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--humans", type=int, default=5)
    parser.add_argument("--chatters", type=int, default=50)
    parser.add_argument("--steady-s", type=float, default=180.0, help="wait at most this long for the tuned encoder")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args.seconds, args.humans, args.chatters, args.steady_s))
    columns = ["what", "n", "p50_ms", "p99_ms", "mean_ms", "max_ms", "target"]
    rows = [
        {
            "what": "customer sends -> agent gets the suggestions",
            **figures["send_to_suggestions"],
            "target": "p99 <= 150",
        },
        {"what": "customer sends -> agent gets the message", **figures["send_to_message"], "target": "-"},
        {"what": "agent gets the message -> its suggestions", **figures["message_to_suggestions"], "target": "-"},
        {"what": "(same load) bot chat: send -> bot's reply", **figures["bot_chat_send_to_reply"], "target": "-"},
    ]
    print_table(
        f"Copilot: {figures['human_messages']} human-phase messages from {args.humans} seated customers in "
        f"{args.seconds:.0f} s ({figures['retriever_mode']} retriever) while {args.chatters} others chat with the bot ({figures['bot_chat_messages_during_load']} "
        f"bot messages); missing suggestions: {figures['missing_suggestions']}; load {figures['load_average_1m']}",
        rows,
        columns,
    )
    write_json(args.json, {"command": "bench/copilot.py " + " ".join(sys.argv[1:]), **figures})


if __name__ == "__main__":
    main()
