"""The copilot's rankings between a relay and the action server, batched against one request per message.

    .venv/bin/python bench/copilot_ranking.py [--messages 1500] [--concurrency 1 50] [--repeats 3] [--json FILE]

Starts the real action server (``warmline actions``: the demo KB, its live retriever, frozen encoder, SQLite in a
scratch dir) and, in this process, the relay's HttpSuggestSource; asks for the suggestions of --messages customer
messages with N asking at once (N customers in the human phase whose messages arrive together). Each level runs
--repeats times each way, the two ways in turns (the median run of each is kept, every run is in the JSON): the relay's source as it ships (the messages waiting while a request is out travel together in
the next one, common/batching.py) and, as the reference, the same source sending each message in a request of its
own as soon as it arrives, as many at once as there are messages (the relay before batching; the action server
still ranks the requests that wait there together, in one encoder pass).
Reported: rankings per second, and the CPU milliseconds per ranking of the action server and of this process (the
relay's side: its HTTP requests and reading the answers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import print_table, write_json

from handoff.copilot import HttpSuggestSource, Ranking, actions_base_url
from tests.stack import running_action_server

QUESTIONS = [
    "how can I reset my password?", "where do I find my invoice?", "can I change my plan?",
    "my order never arrived", "do you ship to canada", "the app crashes when I log in",
]  # fmt: skip


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def ask(url: str, server_pid: int, messages: int, concurrency: int, batched: bool) -> dict[str, Any]:
    source = HttpSuggestSource(url)

    async def alone(text: str, k: int) -> Ranking | None:  # the reference: a request per message, at once
        (ranking,) = await source._rank_together([(text, k)])
        return ranking

    rank = source.rank if batched else alone
    try:
        for _ in range(10):  # a warm connection pool and encoder
            assert await source.rank("warming up", 3) is not None
        pending = [f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})" for i in range(messages)]
        failed = 0

        async def customer() -> None:
            nonlocal failed
            while pending:
                if await rank(pending.pop(), 3) is None:
                    failed += 1

        server0, own0, started = cpu_s(server_pid), own_cpu_s(), time.perf_counter()
        await asyncio.gather(*(customer() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        server, own = cpu_s(server_pid) - server0, own_cpu_s() - own0
    finally:
        await source.close()
    return {
        "concurrency": concurrency,
        "source": "batched (as shipped)" if batched else "one request per message (reference)",
        "messages": messages,
        "failed": failed,
        "rankings_per_s": round(messages / elapsed, 1),
        "action_server_cpu_ms_per_ranking": round(server / messages * 1000, 3),
        "relay_side_cpu_ms_per_ranking": round(own / messages * 1000, 3),
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted(runs, key=lambda r: r["rankings_per_s"])
    return {**ranked[len(ranked) // 2], "runs_rankings_per_s": [r["rankings_per_s"] for r in runs],
            "runs_action_server_cpu_ms": [r["action_server_cpu_ms_per_ranking"] for r in runs],
            "runs_relay_side_cpu_ms": [r["relay_side_cpu_ms_per_ranking"] for r in runs]}  # fmt: skip


async def run(messages: int, levels: list[int], repeats: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as scratch, running_action_server(Path(scratch)) as (settings, pid):
        url = actions_base_url(settings.actions_url)
        rows: list[dict[str, Any]] = []
        for concurrency in levels:
            runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
            for _ in range(repeats):
                for batched in (True, False):
                    runs[batched].append(await ask(url, pid, messages, concurrency, batched))
            rows += [median_run(runs[True]), median_run(runs[False])]
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = asyncio.run(run(args.messages, args.concurrency, args.repeats))
    print_table(
        "Copilot rankings: relay -> action server", rows,
        ["concurrency", "source", "messages", "failed", "rankings_per_s", "action_server_cpu_ms_per_ranking",
         "relay_side_cpu_ms_per_ranking", "runs_rankings_per_s"],
    )  # fmt: skip
    write_json(args.json, {"command": " ".join(sys.argv), "rows": rows})


if __name__ == "__main__":
    main()
