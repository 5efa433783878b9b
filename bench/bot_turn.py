"""Bot-turn latency through the relay (Socket.IO) versus straight to Rasa's REST channel, in the same run.

    .venv/bin/python bench/bot_turn.py [--turns 200] [--postgres] [--json bench/out/bot_turn.json]

Starts the real stack (Rasa, action server, relay on SQLite in a scratch dir; with --postgres a second relay on a
scratch PostgreSQL database, measured instead), then alternates: one turn through the relay (emit user_uttered
-> first bot_uttered reaches the client's handler), one identical turn to Rasa's REST webhook. Every turn is a KB
question (the first example question of each article, in turn), so both distributions have one mode and their
medians compare like with like. Each path uses its own conversations, so both see the same conversation lengths
(ten chats at a time, six turns each, then ten new ones). At the end it checks that every relayed message was
stored.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from harness import freeze_client_heap, kb_questions, print_table, summary_ms, write_json
from sqlalchemy import func, select

from common.db import create_engine, session_factory
from common.settings import normalize_db_url
from handoff.models import Message
from tests import services
from tests.chat_client import Customer
from tests.stack import Stack, running_stack

CONVERSATIONS = 10
# Rasa's time per turn grows with the conversation's length (40 ms at the start, 70 ms after 40 turns, here): chats
# of a few turns, as real ones are, keep both distributions narrow and their medians steady from run to run.
TURNS_PER_CHAT = 6
WARMUP = 20


async def run(turns: int, postgres: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch, running_stack(Path(scratch)) as stack:
        db_name = None
        relay_url, db_url = stack.relay_url, stack.settings.db_url
        if postgres:
            pg_url, db_name = await services.create_pg_database()
            relay_url, db_url = stack.add_relay(database_url=pg_url), normalize_db_url(pg_url)
        try:
            figures = await measure(stack, relay_url, db_url, turns)
        finally:
            if db_name:
                await services.drop_pg_database(db_name)
    return {"database": "postgresql" if postgres else "sqlite", **figures}


async def measure(stack: Stack, relay_url: str, db_url: str, turns: int) -> dict[str, object]:
    texts = itertools.cycle(kb_questions(stack.settings.kb_path))
    customers: list[Customer] = []
    rest_url = f"{stack.settings.rasa_url}/webhooks/rest/webhook"
    relay_s: list[float] = []
    direct_s: list[float] = []
    async with aiohttp.ClientSession() as http:
        for i in range(turns + WARMUP):
            chats, turn_in_round = divmod(i, CONVERSATIONS * TURNS_PER_CHAT)
            if turn_in_round == 0:  # a new round of chats (not timed): both paths start new conversations
                for customer in customers:
                    await customer.close()
                customers = [Customer(relay_url) for _ in range(CONVERSATIONS)]
                for customer in customers:
                    await customer.connect()
                freeze_client_heap()
            text = next(texts)
            customer = customers[i % CONVERSATIONS]
            acked: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            first_reply = len(customer.bot_arrivals)
            started = time.perf_counter()
            await customer.sio.emit(
                "user_uttered", {"message": text, "session_id": customer.session_id, "client_id": uuid.uuid4().hex},
                callback=lambda *ack, done=acked: done.set_result(ack),
            )  # fmt: skip
            reply = await customer.next_reply()
            # Timed as the reply reached the client's event handler, as the direct turn is timed when its response
            # is parsed: the harness's own queue and wait_for after that are not the relay's.
            relay_time = customer.bot_arrivals[first_reply] - started
            await asyncio.wait_for(acked, 30)  # the ack follows the turn's last reply
            while not customer.bot.empty():  # replies beyond the first (a second paragraph) belong to this turn
                customer.bot.get_nowait()
            started = time.perf_counter()
            sender = f"direct-{chats}-{i % CONVERSATIONS}"
            async with http.post(rest_url, json={"sender": sender, "message": text}) as r:
                direct = await r.json()
            direct_time = time.perf_counter() - started
            assert reply.get("text") and direct, "both paths must answer"
            if i >= WARMUP:
                relay_s.append(relay_time)
                direct_s.append(direct_time)
    for customer in customers:
        await customer.close()
    engine = create_engine(db_url)
    async with session_factory(engine)() as s:
        stored = await s.scalar(select(func.count()).select_from(Message).where(Message.sender == "customer"))
    await engine.dispose()
    relay, direct = summary_ms(relay_s), summary_ms(direct_s)
    return {
        "turns": turns,
        "relay": relay,
        "direct_rasa_rest": direct,
        "ratio_p50": round(relay["p50_ms"] / direct["p50_ms"], 3),
        "ratio_p99": round(relay["p99_ms"] / direct["p99_ms"], 3),
        "added_p50_ms": round(relay["p50_ms"] - direct["p50_ms"], 3),
        "customer_messages_stored": stored,
        "customer_messages_sent": turns + WARMUP,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--postgres", action="store_true", help="measure a relay on PostgreSQL (127.0.0.1:5432)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args.turns, args.postgres))
    rows = [
        {"path": "relay (Socket.IO, stored)", **figures["relay"]},  # type: ignore[dict-item]
        {"path": "Rasa REST, direct", **figures["direct_rasa_rest"]},  # type: ignore[dict-item]
    ]
    print_table(
        f"Bot turn latency, {args.turns} turns, relay on {figures['database']}",
        rows,
        ["path", "n", "p50_ms", "p99_ms", "mean_ms", "max_ms"],
    )
    print(
        f"\nratio relay/direct: p50 {figures['ratio_p50']}  p99 {figures['ratio_p99']}; "
        f"relay adds {figures['added_p50_ms']} ms at p50; "
        f"stored {figures['customer_messages_stored']}/{figures['customer_messages_sent']} customer messages"
    )
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
