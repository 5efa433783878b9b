"""Calls that arrive together, run together: ``Coalescer(run, max_batch)`` turns one-at-a-time calls into batches
without making anyone wait for a batch to fill.

A call that finds nothing running starts a pass at once (with whatever arrived in the same turn of the event loop);
the calls that arrive while a pass runs go together in the next one, at most ``max_batch`` at a time. So an idle
system answers each call as soon as alone, and a busy one pays a pass's fixed cost (an HTTP round trip, an encoder
call) once per batch instead of once per call. Used for the copilot's rankings at both ends (handoff/copilot.py asks
the action server; actions/suggest.py ranks in one encoder pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - one item of a batch
R = TypeVar("R")


class Coalescer(Generic[I, R]):
    def __init__(self, run: Callable[[list[I]], Awaitable[Sequence[R]]], max_batch: int) -> None:
        """``run`` takes a batch and returns one result per item, in order; if it raises, every call of that batch
        raises the same exception, and the next batch runs."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._waiting: list[tuple[I, asyncio.Future[R]]] = []
        self._running = False

    async def __call__(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                try:
                    results = await self._run([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # its caller may have been cancelled meanwhile
                        future.set_result(result)
        finally:
            self._running = False
