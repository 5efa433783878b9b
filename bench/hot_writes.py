"""The chat's hot-path write on SQLite: a customer message stored through ``HotPathWriter``, one at a time (each
its own transaction and COMMIT: the reference) against N at once (the writes that queue while one runs commit
together: group commit). CPU and wall time per write, in one process, alternating the two ways per round.

    .venv/bin/python bench/hot_writes.py [--writes 3000] [--at-once 10 50] [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import print_table, write_json

from common.db import HotPathWriter, WriteConnection, create_engine
from handoff import store
from warmline.migrate import upgrade

CHATS = 500  # the messages go to this many conversations in turn, as many chats writing at once do


def customer_message(i: int, tag: str) -> Any:
    def work(s: WriteConnection) -> Any:
        return store.add_customer_message(s, f"conv-{i % CHATS:05d}", f"customer {i} says hello", f"{tag}-{i}", None)

    return work


async def timed(writer: HotPathWriter, writes: int, at_once: int, tag: str) -> tuple[float, float]:
    """(wall us, CPU us) per write."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, writes, at_once):
        await asyncio.gather(*(writer.write(customer_message(i, tag)) for i in range(start, start + at_once)))
    return (time.perf_counter() - wall) / writes * 1e6, (time.process_time() - cpu) / writes * 1e6


async def run(writes: int, at_once: list[int], rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'hot.db'}"
        upgrade(url)
        engine = create_engine(url)
        writer = HotPathWriter(engine)
        await timed(writer, CHATS, 1, "warm")  # every conversation exists before anything is measured
        ways = [1, *at_once]
        seen: dict[int, list[tuple[float, float]]] = {n: [] for n in ways}
        for r in range(rounds):
            for n in ways:
                seen[n].append(await timed(writer, writes, n, f"r{r}n{n}"))
        writer.close()
        await engine.dispose()
    rows = []
    for n in ways:
        wall = statistics.median(w for w, _ in seen[n])
        cpu = statistics.median(c for _, c in seen[n])
        rows.append(
            {"at_once": n, "wall_us_per_write": round(wall, 1), "cpu_us_per_write": round(cpu, 1),
             "cpu_of_one_at_a_time": round(cpu / statistics.median(c for _, c in seen[1]), 2),
             "runs_cpu_us": [round(c, 1) for _, c in seen[n]]}
        )  # fmt: skip
    return {"writes_per_run": writes, "rounds": rounds, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--at-once", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(run(args.writes, args.at_once, args.rounds))
    print_table(
        f"Hot-path writes on SQLite (a customer message each), {args.writes} a run, median of {args.rounds}; "
        "at once 1 = one transaction a write (the reference)",
        figures["rows"],
        ["at_once", "wall_us_per_write", "cpu_us_per_write", "cpu_of_one_at_a_time", "runs_cpu_us"],
    )
    write_json(args.json, {"command": "bench/hot_writes.py " + " ".join(sys.argv[1:]), **figures})


if __name__ == "__main__":
    main()
