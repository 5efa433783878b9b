"""The live KB as the actions see it: the published KB from the database, re-indexed within seconds of a publish.

Editors publish in the database (knowledge/store.py bumps the KB revision in the same transaction). The action
server checks the revision at most once a second, from a background task once the server runs (so the answer path
never waits on the database), and when it changed reads the published KB, builds a new retriever in a worker
thread and swaps it in with one assignment: a request sees either the old KB or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from actions.retrain import Retrainer, train_and_load
from common.db import create_engine, reading, session_factory
from common.settings import Settings
from knowledge import store
from knowledge.articles import KnowledgeBase
from knowledge.retrieval import Retriever
from knowledge.seed import seed

log = logging.getLogger(__name__)

# How often at most the KB revision is checked; well inside the "live within seconds" promise, and one
# primary-key read a second is nothing for the database.
CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True)
class LiveKB:
    kb: KnowledgeBase
    retriever: Retriever
    version: str  # "r<KB revision>"


class KBService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._live: LiveKB | None = None
        self._checked_at = 0.0
        self._lock = asyncio.Lock()
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._poller: asyncio.Task[None] | None = None
        self.retrainer: Retrainer | None = None
        if settings.kb_auto_retrain_s > 0:
            self.retrainer = Retrainer(settings.kb_auto_retrain_s, train_and_load())

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The action server's own database connection (created in the loop that first needs it)."""
        if self._sessions is None:
            self._engine = create_engine(self.settings.db_url)
            self._sessions = session_factory(self._engine)
        return self._sessions

    async def start(self, *_: object) -> None:
        """Server-start listener: seed an empty KB, index it before the server answers, then poll for publishes."""
        await seed(self.sessions, self.settings.kb_path)
        await self.refresh()
        self._poller = asyncio.create_task(self._poll())

    async def stop(self, *_: object) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.retrainer is not None:
            await self.retrainer.close()
        if self._engine is not None:
            await self._engine.dispose()

    async def current(self) -> LiveKB:
        if self._live is not None and (
            self._poller is not None or time.monotonic() - self._checked_at < CHECK_INTERVAL_S
        ):
            return self._live
        # No poller (actions used outside the server, e.g. in tests): check on demand, at most once a second.
        return await self.refresh()

    async def refresh(self) -> LiveKB:
        async with self._lock:
            self._checked_at = time.monotonic()
            async with reading(self.sessions) as s:
                revision = f"r{await store.revision(s)}"
                if self._live is not None and self._live.version == revision:
                    return self._live
                kb = await store.published_kb(s)
            # Index building is CPU work: keep it off the event loop so other chats keep flowing meanwhile.
            started = time.monotonic()
            live = await asyncio.to_thread(self._build, kb, revision)
            changed = self._live is not None
            self._live = live
            if changed and self.retrainer is not None:
                self.retrainer.poke()
            log.info("KB indexed: %d articles (%s) in %.1f s", len(kb.articles), revision, time.monotonic() - started)
            return live

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            try:
                await self.refresh()
            except Exception:  # a database hiccup or a KB that cannot be indexed: keep answering from the last one
                log.exception(
                    "KB refresh failed; still answering from %s", self._live.version if self._live else "nothing"
                )

    @staticmethod
    def _build(kb: KnowledgeBase, version: str) -> LiveKB:
        return LiveKB(kb=kb, retriever=Retriever.build(kb), version=version)


# One live KB per action-server process, shared by every action; ``warmline actions`` starts and stops it.
live_kb = KBService(Settings())
