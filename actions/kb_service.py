"""The live KB as the actions see it: the published KB from the database, re-indexed within seconds of a publish.

Editors publish in the database (knowledge/store.py bumps the KB revision in the same transaction). The action
server checks the revision at most once a second, from a background task once the server runs (so the answer path
never waits on the database), and when it changed reads the published KB, builds a new retriever in a worker
thread and swaps it in with one assignment: a request sees either the old KB or the new one, never a mix.

The first retriever of a KB revision uses the frozen sentence encoder, so a publish is live within seconds. Once
the KB has been quiet for ``TUNE_AFTER_S``, the encoder is fine-tuned on the KB's own questions
(knowledge/finetune.py; tens of seconds on one core, in a worker thread at lower CPU priority) and a retriever
built with it replaces the first one, if the KB has not changed meanwhile (a newer publish stops the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from actions.retrain import Retrainer, train_and_load
from common.background import background_thread
from common.db import HotPathWriter, create_engine, reading, session_factory
from common.settings import Settings
from knowledge import store
from knowledge.articles import KnowledgeBase
from knowledge.embeddings import default_embedder
from knowledge.finetune import FineTuneStopped, fine_tune
from knowledge.retrieval import Retriever
from knowledge.seed import seed

log = logging.getLogger(__name__)

# How often at most the KB revision is checked; well inside the "live within seconds" promise, and one
# primary-key read a second is nothing for the database.
CHECK_INTERVAL_S = 1.0
# Quiet time after a publish before the encoder is fine-tuned: an editor publishing several articles in a row
# gets one fine-tune, not one per article.
TUNE_AFTER_S = 5.0
TUNE_NICENESS = 10  # the fine-tune's thread yields the CPU to the answer path, to Rasa and to the copilot


@dataclass(frozen=True)
class LiveKB:
    kb: KnowledgeBase
    retriever: Retriever
    version: str  # "r<KB revision>"
    tuned: bool = False  # the retriever uses the encoder fine-tuned on this KB


class KBService:
    def __init__(self, settings: Settings, fine_tune: bool = True) -> None:
        self.settings = settings
        self.fine_tune = fine_tune and settings.kb_fine_tune and default_embedder() is not None
        self._tuner: asyncio.Task[None] | None = None
        self._tune_pool = background_thread("kb-fine-tune", TUNE_NICENESS)
        self._stopping = False
        self._latest_revision = ""  # set as soon as a new revision is seen: a fine-tune of an older one stops
        self._live: LiveKB | None = None
        self._checked_at = 0.0
        self._lock = asyncio.Lock()
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._writer: HotPathWriter | None = None
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

    @property
    def writer(self) -> HotPathWriter:
        """Single-statement writes on every bot answer (the answer's row for reports). On SQLite they commit on the
        loop's thread in microseconds; a transaction through aiosqlite's thread would hold the database's write
        lock across several thread hops, and the relay's writes of the same turn would find it locked."""
        if self._writer is None:
            assert self.sessions is not None and self._engine is not None
            self._writer = HotPathWriter(self._engine)
        return self._writer

    async def start(self, *_: object) -> None:
        """Server-start listener: seed an empty KB, index it before the server answers, then poll for publishes."""
        await seed(self.sessions, self.settings.kb_path)
        await self.refresh()
        self._poller = asyncio.create_task(self._poll())

    async def stop(self, *_: object) -> None:
        self._stopping = True
        if self._tuner is not None:
            self._tuner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tuner
        self._tune_pool.shutdown(wait=False, cancel_futures=True)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.retrainer is not None:
            await self.retrainer.close()
        if self._writer is not None:
            self._writer.close()
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
                self._latest_revision = revision
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
            if self.fine_tune and live.retriever.uses_embeddings:
                if self._tuner is not None:
                    self._tuner.cancel()
                self._tuner = asyncio.create_task(self._tune(live, started))
            return live

    async def _tune(self, live: LiveKB, published_seen: float) -> None:
        """Fine-tune the encoder on this KB and swap in a retriever built with it, unless the KB changed."""
        await asyncio.sleep(TUNE_AFTER_S)
        if self._live is not live:
            return
        try:
            tuned, seconds, steps = await asyncio.get_running_loop().run_in_executor(
                self._tune_pool, self._build_tuned, live
            )
        except FineTuneStopped:
            return
        except Exception:  # keep answering with the frozen encoder; the next publish tries again
            log.exception("KB fine-tune failed; %s stays on the frozen encoder", live.version)
            return
        async with self._lock:
            if self._live is live:
                self._live = tuned
                log.info(
                    "KB encoder fine-tuned on %s in %.1f s (%d steps); live %.1f s after the publish was seen",
                    live.version,
                    seconds,
                    steps,
                    time.monotonic() - published_seen,
                )

    def _build_tuned(self, live: LiveKB) -> tuple[LiveKB, float, int]:
        """In the worker thread: (the tuned live KB, fine-tuning seconds, steps)."""
        embedder = fine_tune(live.kb, should_stop=lambda: self._stopping or self._latest_revision != live.version)
        retriever = Retriever.build(live.kb, embedder=embedder)
        retriever.rank("hello")  # traces the tuned encoder (knowledge/embeddings.py) before a customer needs it
        return replace(live, retriever=retriever, tuned=True), embedder.train_seconds, embedder.steps

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
        retriever = Retriever.build(kb)
        retriever.rank("hello")  # the first ranking traces the encoder (once per process): not a customer's wait
        return LiveKB(kb=kb, retriever=retriever, version=version)


# One live KB per action-server process, shared by every action; ``warmline actions`` starts and stops it.
live_kb = KBService(Settings())
