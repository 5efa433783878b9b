"""The live KB as the actions see it: loaded once, re-indexed in the background when the KB changes."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from knowledge.articles import KnowledgeBase, load_kb
from knowledge.retrieval import Retriever
from warmline.settings import Settings

log = logging.getLogger(__name__)

# How often at most the KB source is checked for changes; well inside the "live within seconds" promise.
CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True)
class LiveKB:
    kb: KnowledgeBase
    retriever: Retriever
    version: str


class KBService:
    def __init__(self, kb_path: Path) -> None:
        self.kb_path = kb_path
        # Indexed up front, so the action server reports healthy only once it can answer at full speed.
        self._live: LiveKB | None = self._build(self._version())
        self._checked_at = time.monotonic()
        self._lock = asyncio.Lock()

    def _version(self) -> str:
        stat = self.kb_path.stat()
        return f"{stat.st_mtime_ns}:{stat.st_size}"

    async def current(self) -> LiveKB:
        now = time.monotonic()
        if self._live is not None and now - self._checked_at < CHECK_INTERVAL_S:
            return self._live
        async with self._lock:
            self._checked_at = time.monotonic()
            version = self._version()
            if self._live is None or self._live.version != version:
                # Index building is CPU work: keep it off the event loop so other chats keep flowing.
                self._live = await asyncio.to_thread(self._build, version)
                log.info("KB indexed: %d articles (version %s)", len(self._live.kb.articles), version)
            return self._live

    def _build(self, version: str) -> LiveKB:
        kb = load_kb(self.kb_path)
        return LiveKB(kb=kb, retriever=Retriever.build(kb), version=version)


# One live KB per action-server process, shared by every action.
live_kb = KBService(Settings().kb_path)
