"""The bot's deflection decision time while customers chat (issue 16: "decision p99 under 20 ms with 50 customers
chatting"), measured where it happens: in the action server of the real stack, from its own histogram
(``warmline_kb_decision_seconds`` on its ``/metrics``, actions/telemetry.py), read before and after each phase.

    .venv/bin/python bench/decision_load.py [--customers 50] [--seconds 20] [--think 2.0] [--json FILE]

Phases, one after the other on one stack (Rasa, the action server, one relay, SQLite; loopback only):
- quiet: 1 customer, closed loop (the reference: the same decision on an otherwise idle stack);
- chatting: --customers customers, each sending a KB question, waiting for the reply, then pausing --think
  seconds (jittered 0.5-1.5x), as people chat;
- flat out: --customers customers, closed loop with no pause (the bot phase at saturation, bench/load.py a).
Each decision is one customer message the bot had to judge (the KB answer action); the table shows the turns beside
the decisions, which should match. The histogram's buckets are
finest around 20 ms, so the share of decisions under 20 ms is exact and the quantiles are read as Prometheus's
``histogram_quantile`` does (linear within a bucket).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from harness import closed_loop, freeze_client_heap, kb_questions, print_table, summary_ms, write_json

from tests.chat_client import Customer
from tests.stack import Stack, running_stack

METRIC = "warmline_kb_decision_seconds"
TARGET_S = 0.020


async def decision_buckets(http: aiohttp.ClientSession, stack: Stack) -> dict[float, float]:
    """The action server's cumulative decision counts by bucket bound (seconds; +Inf as math.inf)."""
    url = f"http://127.0.0.1:{stack.settings.actions_port}/metrics"
    async with http.get(url, headers={"Authorization": f"Bearer {stack.settings.metrics_token}"}) as r:
        assert r.status == 200, f"the action server's /metrics answered {r.status}"
        body = await r.text()
    buckets: dict[float, float] = {}
    for line in body.splitlines():
        if line.startswith(f"{METRIC}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    assert buckets, f"no {METRIC} on the action server's /metrics"
    return buckets


def quantile(q: float, counts: dict[float, float]) -> float | None:
    """As Prometheus's histogram_quantile: the bucket holding rank q * n, linear within it (the last finite bound
    if the rank falls in +Inf)."""
    bounds = sorted(counts)
    total = counts[bounds[-1]]
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if counts[bound] >= rank:
            if bound == float("inf"):
                return lower
            inside = counts[bound] - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, counts[bound]
    return lower


def figures_between(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    total = counts[float("inf")]
    p50, p99 = quantile(0.5, counts), quantile(0.99, counts)
    return {
        "decisions": int(total),
        "under_20ms": round(counts[TARGET_S] / total, 4) if total else None,
        "decision_p50_ms": round(p50 * 1000, 2) if p50 is not None else None,
        "decision_p99_ms": round(p99 * 1000, 2) if p99 is not None else None,
    }


async def phase(
    http: aiohttp.ClientSession, stack: Stack, texts: list[str], customers: int, seconds: float, pause_s: float
) -> dict[str, Any]:
    chatting = [Customer(stack.relay_url) for _ in range(customers)]
    await asyncio.gather(*(c.connect() for c in chatting))
    freeze_client_heap()

    before = await decision_buckets(http, stack)
    turns, elapsed = await closed_loop([c.turn for c in chatting], texts, seconds, pause_s)
    after = await decision_buckets(http, stack)
    await asyncio.gather(*(c.close() for c in chatting))
    turn = summary_ms(turns)
    return {
        "customers": customers, "think_s": pause_s, "seconds": round(elapsed, 1),
        "turns_per_s": round(len(turns) / elapsed, 1), "turn_p50_ms": turn["p50_ms"], "turn_p99_ms": turn["p99_ms"],
        **figures_between(before, after),
    }  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"command": " ".join(["bench/decision_load.py", *sys.argv[1:]]), "phases": []}
    with tempfile.TemporaryDirectory() as scratch, running_stack(Path(scratch)) as stack:
        # The KB's own questions: messages the bot cannot place would hand the chat to a person after a few turns,
        # and from then on the customer's messages go to the agent, not to a decision.
        texts = kb_questions(stack.settings.kb_path)
        async with aiohttp.ClientSession() as http:
            await phase(http, stack, texts, 1, 3.0, 0.0)  # warm-up: the first turns load what they need
            for name, customers, think_s in (
                ("quiet", 1, 0.0), ("chatting", args.customers, args.think), ("flat out", args.customers, 0.0)
            ):  # fmt: skip
                row = await phase(http, stack, texts, customers, args.seconds, think_s)
                figures["phases"].append({"phase": name, **row})
                write_json(args.json, figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--think", type=float, default=2.0, help="seconds between a reply and the next message")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print_table(
        f"The bot's decision in the action server (target: p99 under {TARGET_S * 1000:.0f} ms with "
        f"{args.customers} customers chatting)",
        figures["phases"],
        ["phase", "customers", "think_s", "turns_per_s", "turn_p50_ms", "turn_p99_ms", "decisions", "under_20ms",
         "decision_p50_ms", "decision_p99_ms"],
    )  # fmt: skip
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
