"""Keep a long-running server's start-up objects, and its requests in flight, out of the garbage collector's way."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

# Net new container objects between two young collections (CPython's default: 700). A server with hundreds of
# messages in flight allocates that many in a fraction of a millisecond: its tasks, coroutines and futures, alive
# for the few milliseconds until their answer leaves, were collected young about 90 times a second and promoted,
# so that the oldest generation filled with them and was walked in full about once a second. Measured on the
# relay (scale-out c, 500 pairs x 30, docs/benchmarks.md): 17-20 % of its CPU in the collector, full collections
# of 70-110 ms. At 10,000 a burst of requests mostly ends before a young collection sees it: a handful of young
# collections of about 10 ms in the same traffic, and no full one.
YOUNG_GENERATION_THRESHOLD = 10_000
# With few objects promoted, CPython's own rule (a full collection once a quarter of the oldest generation is new)
# rarely fires, and reference cycles that die old wait for it (closed websockets' objects, which Sanic held 15-30 s,
# grew the relay's memory 14-21 % in tests/test_hostile_input.py's 30 s without it). So a full collection also
# runs on a clock: every FULL_COLLECTION_MIN_S at most, and never more than FULL_COLLECTION_CPU_SHARE of the
# time (its pause grows with the live objects: about 85 ms with 500 sockets connected on this 2-core machine).
FULL_COLLECTION_MIN_S = 5.0
FULL_COLLECTION_CPU_SHARE = 0.02


def next_full_collection_in(pause_s: float) -> float:
    """Seconds until the next full collection after one that took ``pause_s``."""
    return max(FULL_COLLECTION_MIN_S, pause_s / FULL_COLLECTION_CPU_SHARE)


class FullCollections:
    """Full collections on ``loop``'s clock, each scheduling the next by its own pause."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._next: asyncio.TimerHandle | None = None

    def start(self, delay_s: float | None = None) -> None:
        self._next = self._loop.call_later(FULL_COLLECTION_MIN_S if delay_s is None else delay_s, self._collect)

    def stop(self) -> None:
        if self._next is not None:
            self._next.cancel()
            self._next = None

    def _collect(self) -> None:
        started = time.perf_counter()
        gc.collect()
        self.start(next_full_collection_in(time.perf_counter() - started))


async def freeze_startup_objects(*_: Any) -> None:
    """A Sanic ``after_server_start`` listener: ``settle_collector`` on the server's loop."""
    settle_collector(asyncio.get_running_loop())


def settle_collector(loop: asyncio.AbstractEventLoop) -> FullCollections:
    """Collect once, then freeze what is left, collect young generations less often
    (``YOUNG_GENERATION_THRESHOLD``) and the oldest on ``loop``'s clock (returned, to stop it).

    Modules, models and indexes loaded at start-up are long-lived objects in the collector's oldest generation,
    and every full collection walks all of them: 100-120 ms pauses in the relay and 230-360 ms in Rasa, measured
    as the p99 of bench/escalation.py. Frozen, they are skipped; a full collection walks only newer objects.
    """
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *thresholds[1:])
    full = FullCollections(loop)
    full.start()
    return full
