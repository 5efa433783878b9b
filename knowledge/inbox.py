"""The unanswered-questions inbox: what customers asked that the bot could not answer, grouped for editors.

The action server records (``record``); editors read groups (``open_groups``) and resolve them into an article,
new (``to_new_article``) or existing (``to_existing_article``), or dismiss them. A resolved question leaves the inbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.clock import utcnow
from common.errors import InvalidArticle
from knowledge import store
from knowledge.articles import Article
from knowledge.grouping import Group, group_questions
from knowledge.models import KBArticleVersion, UnansweredQuestion

MAX_TEXT_CHARS = 1000  # a pasted essay is still worth a look, but not all of it
MAX_OPEN_GROUPED = 2000  # newest open questions grouped per request; clustering is O(n^2) in memory


@dataclass(frozen=True)
class InboxGroup:
    group: Group
    reasons: tuple[str, ...]
    last_asked: datetime


async def record(s: AsyncSession, text: str, conversation_id: str | None, reason: str) -> None:
    text = " ".join(text.split())[:MAX_TEXT_CHARS]
    if text and not text.startswith("/"):  # "/human" and quick-reply payloads are clicks, not questions
        s.add(UnansweredQuestion(text=text, conversation_id=conversation_id, reason=reason))


async def open_questions(s: AsyncSession, limit: int = MAX_OPEN_GROUPED) -> list[UnansweredQuestion]:
    stmt = (
        select(UnansweredQuestion)
        .where(UnansweredQuestion.resolved_at.is_(None))
        .order_by(UnansweredQuestion.id.desc())
    )
    return list((await s.execute(stmt.limit(limit))).scalars())


async def open_groups(s: AsyncSession) -> list[InboxGroup]:
    rows = await open_questions(s)
    by_id = {r.id: r for r in rows}
    # Clustering is CPU work: off the event loop, so a big inbox does not stall other requests.
    groups = await asyncio.to_thread(group_questions, [(r.id, r.text) for r in rows])
    return [
        InboxGroup(
            group=g,
            reasons=tuple(sorted({by_id[i].reason for i in g.ids})),
            last_asked=max(by_id[i].created_at for i in g.ids),
        )
        for g in groups
    ]


async def _take(s: AsyncSession, question_ids: Sequence[int]) -> list[UnansweredQuestion]:
    """The open questions with these ids; refuses if any is unknown or already handled (someone else was faster)."""
    if not question_ids:
        raise InvalidArticle("Pick at least one question.")
    stmt = select(UnansweredQuestion).where(
        UnansweredQuestion.id.in_(set(question_ids)), UnansweredQuestion.resolved_at.is_(None)
    )
    rows = list((await s.execute(stmt)).scalars())
    if len(rows) != len(set(question_ids)):
        raise InvalidArticle("Some of these questions are no longer in the inbox; reload it.")
    return sorted(rows, key=lambda r: r.id)


async def _resolve(s: AsyncSession, question_ids: Sequence[int], article_id: str | None) -> None:
    await s.execute(
        update(UnansweredQuestion)
        .where(UnansweredQuestion.id.in_(set(question_ids)))
        .values(resolved_at=utcnow(), article_id=article_id)
    )


async def to_new_article(
    s: AsyncSession, question_ids: Sequence[int], draft: dict[str, object], author: str | None
) -> KBArticleVersion:
    """A new draft article whose example questions are these (plus any the editor typed)."""
    rows = await _take(s, question_ids)
    given = draft.get("questions")
    typed = [q for q in given if isinstance(q, str)] if isinstance(given, list) else []
    questions = list(dict.fromkeys([*typed, *(r.text for r in rows)]))
    article: Article = store.validate({**draft, "questions": questions}, "new article")
    version = await store.create_article(s, article, author, note="from the unanswered inbox")
    await _resolve(s, question_ids, article.id)
    return version


async def to_existing_article(
    s: AsyncSession, question_ids: Sequence[int], article_id: str, author: str | None
) -> KBArticleVersion:
    rows = await _take(s, question_ids)
    known = {" ".join(q.lower().split()) for q in (await store.view(s, article_id)).article.questions}
    fresh = [r.text for r in rows if " ".join(r.text.lower().split()) not in known]
    # Questions the article already has are simply filed under it: no empty new version.
    version = (
        await store.add_questions(s, article_id, fresh, author) if fresh else await store.latest_version(s, article_id)
    )
    await _resolve(s, question_ids, article_id)
    return version


async def dismiss(s: AsyncSession, question_ids: Sequence[int]) -> None:
    await _take(s, question_ids)
    await _resolve(s, question_ids, None)
