"""Shared bits of the benchmark scripts: percentiles, the printed table, the --json file, the KB questions the
customers ask and the closed loop they ask them in."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def freeze_client_heap() -> None:
    """Call once the benchmark's clients are connected: the client's own full garbage collections (50-60 ms with
    150 Socket.IO clients) would otherwise be measured as the server's latency. The servers do the same at start
    (common/long_lived.py)."""
    gc.collect()
    gc.freeze()


def kb_questions(kb_path: Path) -> list[str]:
    """One question per article the bot answers (not those that always go to a person)."""
    from knowledge.articles import load_kb  # after ROOT is on sys.path

    return [a.questions[0] for a in load_kb(kb_path).articles if not a.always_human]


async def closed_loop(
    workers: list[Callable[[str], Awaitable[None]]], texts: list[str], seconds: float, pause_s: float = 0.0
) -> tuple[list[float], float]:
    """Each worker sends a turn, waits for it, then (with ``pause_s``) pauses 0.5-1.5 times that, as people chat,
    and sends the next, until ``seconds`` are over; (latencies, elapsed)."""
    samples: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    rng = random.Random(len(workers))

    async def loop(worker: Callable[[str], Awaitable[None]], offset: int) -> None:
        for text in itertools.islice(itertools.cycle(texts), offset, None):
            if time.perf_counter() >= deadline:
                return
            began = time.perf_counter()
            await worker(text)
            samples.append(time.perf_counter() - began)
            if pause_s:
                await asyncio.sleep(pause_s * rng.uniform(0.5, 1.5))

    await asyncio.gather(*(loop(w, i) for i, w in enumerate(workers)))
    return samples, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    print(f"\n{title}")
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def write_json(path: str | None, figures: dict[str, Any]) -> None:
    if not path:
        return
    figures = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        **figures,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(figures, indent=2) + "\n")
