"""The one scheduling trick of the chat's hot path, behind one seam: the bot reads a customer's message while the
relay stores it.

A bot turn is ~40 ms of Rasa and the store a few hundred microseconds of the relay, so the request to Rasa leaves
first and the store runs while Rasa works. The store holds the event loop while it runs (common/db.py,
``HotPathWriter``), so the request must be on the wire before it starts: aiohttp on Python 3.11 writes a request
from a task it starts in the asking task's first step, hence two turns of the loop. It is only an ordering hint: if
the request needs a new connection it leaves after the store, a little later, and nothing is wrong.

When the relay then learns the reading is not needed (a resend, or the human phase), ``drop()`` lets the request
finish on its own, holding a reference so the task is not collected half-way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")
S = TypeVar("S")

_dropped: set[asyncio.Task[Any]] = set()


class Reading(Generic[T]):
    def __init__(self, task: asyncio.Task[T]) -> None:
        self._task = task

    async def result(self) -> T:
        return await self._task

    def drop(self) -> None:
        _dropped.add(self._task)
        self._task.add_done_callback(_dropped.discard)


async def while_storing(ask: Coroutine[Any, Any, T], store: Callable[[], Awaitable[S]]) -> tuple[S, Reading[T]]:
    """Start ``ask``, let its request leave, then run ``store``; if the store fails, the ask is cancelled."""
    task = asyncio.create_task(ask)
    for _ in range(2):
        await asyncio.sleep(0)
    try:
        stored = await store()
    except BaseException:
        task.cancel()
        raise
    return stored, Reading(task)


async def let_emits_leave() -> None:
    """One turn of the loop, so that what was just emitted (emit only queues it) is written out before the next
    store, which runs on the loop's thread without yielding."""
    await asyncio.sleep(0)
