"""Record what the bot could not answer into the editors' inbox, without slowing the customer's reply.

The write runs as a background task on the action server's own database connection (``live_kb.sessions``); the
action returns at once. A failed write is logged and dropped: the inbox is a curation aid, never worth a failed
chat turn.
"""

from __future__ import annotations

import asyncio
import logging

from actions.kb_service import live_kb
from knowledge import inbox

log = logging.getLogger(__name__)

# Strong references to running writes: the event loop keeps only weak ones, so a task could vanish mid-write.
_pending: set[asyncio.Task[None]] = set()


def record_unanswered(text: str, conversation_id: str | None, reason: str) -> None:
    task = asyncio.get_running_loop().create_task(_write(text, conversation_id, reason))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _write(text: str, conversation_id: str | None, reason: str) -> None:
    try:
        async with live_kb.sessions() as s, s.begin():
            await inbox.record(s, text, conversation_id, reason)
    except Exception:
        log.exception("could not record an unanswered question")


async def drain() -> None:
    """Wait for pending writes (tests, and shutdown)."""
    if _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)
