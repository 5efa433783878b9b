"""KB search for the console: the agent looks up an article and inserts its answer with one click.

Reads the published KB from the database (``knowledge.store.published_kb``, re-read only when the KB revision
moves); before the KB is seeded into the database, the YAML file (``knowledge.articles.load_kb``). Scoring is plain word overlap over title, questions and tags, which is enough for a person
scanning five results (the bot's retriever is tuned for something else: one confident answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.articles import Article, KnowledgeBase, load_kb

WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Hit:
    id: str
    title: str
    answer: str
    team: str
    score: float


def words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if len(w) > 1}


def score(article: Article, query: set[str]) -> float:
    title = words(article.title)
    body = words(" ".join(article.questions) + " " + " ".join(article.tags))
    answer = words(article.answer)
    return sum(3.0 if w in title else 1.5 if w in body else 0.5 if w in answer else 0.0 for w in query)


def search(kb: KnowledgeBase, query: str, limit: int = 5) -> list[Hit]:
    q = words(query)
    if not q:
        return []
    ranked = sorted(((score(a, q), a) for a in kb.articles), key=lambda pair: -pair[0])
    return [Hit(a.id, a.title, a.answer, a.team, s) for s, a in ranked[:limit] if s > 0]


class KBReader:
    """The published KB: from the database when it has one, else the YAML file; cached per revision."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version: tuple[int, int] | None = None
        self._kb = KnowledgeBase()
        self._revision: int | None = None
        self._db_kb = KnowledgeBase()

    async def published(self, s: AsyncSession) -> KnowledgeBase:
        try:
            from knowledge import store  # the KB editor's database store (issue 3)
        except ImportError:
            return self.current()
        revision = await store.revision(s)
        if revision != self._revision:
            self._db_kb, self._revision = await store.published_kb(s), revision
        return self._db_kb if self._db_kb.articles else self.current()

    def current(self) -> KnowledgeBase:
        try:
            stat = self.path.stat()
        except OSError:
            return self._kb
        version = (stat.st_mtime_ns, stat.st_size)
        if version != self._version:
            self._kb, self._version = load_kb(self.path), version
        return self._kb
