"""KB search for the console: the agent looks up an article and inserts its answer with one click.

Reads the published KB from the database (``knowledge.store.published_kb``, re-read only when the KB revision
moves). Scoring is plain word overlap over title, questions and tags, which is enough for a person scanning five
results (the bot's retriever is tuned for something else: one confident answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge import store
from knowledge.articles import Article, KnowledgeBase

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
    """The published KB from the database, re-read only when the KB revision moves."""

    def __init__(self) -> None:
        self._revision: int | None = None
        self._kb = KnowledgeBase()

    async def published(self, s: AsyncSession) -> KnowledgeBase:
        current = await store.revision(s)
        if current != self._revision:
            self._kb, self._revision = await store.published_kb(s), current
        return self._kb
