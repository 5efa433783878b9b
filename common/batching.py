"""Calls that arrive together, run together: ``Coalescer(run, max_batch)`` turns one-at-a-time calls into batches
without making anyone wait for a batch to fill.

A call that finds nothing running starts a pass at once (with whatever arrived in the same turn of the event loop);
the calls that arrive while a pass runs go together in the next one, at most ``max_batch`` at a time. So an idle
system answers each call as soon as alone, and a busy one pays a pass's fixed cost (an HTTP round trip, an encoder
call) once per batch instead of once per call. Used for the copilot's rankings at both ends (handoff/copilot.py asks
the action server; actions/suggest.py ranks in one encoder pass).

A call may name a ``key``: a newer call with the same key replaces one that is still waiting (it keeps its place in
the line, and the replaced caller gets ``Superseded``). So when the passes fall behind, what waits is bounded by the
number of keys, not by the arrival rate, and no pass spends time on work whose answer nobody needs any more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - one item of a batch
R = TypeVar("R")


class Superseded(Exception):
    """A newer call with the same key took this call's place before a pass picked it up."""


@dataclass
class _Waiting(Generic[I, R]):
    item: I
    future: asyncio.Future[R]
    key: Hashable | None


class Coalescer(Generic[I, R]):
    def __init__(self, run: Callable[[list[I]], Awaitable[Sequence[R]]], max_batch: int) -> None:
        """``run`` takes a batch and returns one result per item, in order; if it raises, every call of that batch
        raises the same exception, and the next batch runs."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._waiting: list[_Waiting[I, R]] = []
        self._by_key: dict[Hashable, _Waiting[I, R]] = {}
        self._running = False
        self.superseded = 0  # calls replaced by a newer one with their key, since this coalescer was made

    async def __call__(self, item: I, key: Hashable | None = None) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        earlier = self._by_key.get(key) if key is not None else None
        if earlier is not None:
            if not earlier.future.done():
                earlier.future.set_exception(Superseded())
            earlier.item, earlier.future = item, future
            self.superseded += 1
        else:
            entry = _Waiting(item, future, key)
            self._waiting.append(entry)
            if key is not None:
                self._by_key[key] = entry
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                for entry in batch:
                    if entry.key is not None:
                        del self._by_key[entry.key]  # running now: a newer call with its key waits for the next
                try:
                    results = await self._run([entry.item for entry in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
                except Exception as error:
                    for entry in batch:
                        if not entry.future.done():
                            entry.future.set_exception(error)
                    continue
                for entry, result in zip(batch, results, strict=True):
                    if not entry.future.done():  # its caller may have been cancelled meanwhile
                        entry.future.set_result(result)
        finally:
            self._running = False
