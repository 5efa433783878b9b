"""The KB in the database: plain async functions over an ``AsyncSession``; the caller owns the transaction.

Content goes in and out as ``knowledge.articles.Article`` (validated by ``parse_article``), so the YAML file, the
importers, the editor API and the retriever all share one model. Every save appends a version; ``publish`` moves
the article's live pointer and bumps the KB revision in the same transaction, so a reader that sees the new
revision also sees the new content. Overview: docs/knowledge-base.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.clock import utcnow
from common.errors import Conflict, InvalidArticle, NotFound
from knowledge.articles import Article, ArticleError, KnowledgeBase, parse_article
from knowledge.models import KBArticle, KBArticleVersion, KBMeta

META_ID = 1


@dataclass(frozen=True)
class ArticleView:
    """An article as editors see it: its newest content plus where publishing stands."""

    article: Article  # the latest version's content
    status: str  # draft | published
    latest_version: int  # version number (1, 2, ...)
    published_version: int | None
    updated_at: str

    @property
    def has_unpublished_changes(self) -> bool:
        return self.published_version != self.latest_version


@dataclass(frozen=True)
class ImportResult:
    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]


def validate(raw: dict[str, object], where: str = "article") -> Article:
    """One rule set for every way content arrives (API, import, YAML): ``parse_article``'s."""
    try:
        return parse_article(raw, where)
    except ArticleError as exc:
        raise InvalidArticle(str(exc)) from exc


def article_of(version: KBArticleVersion) -> Article:
    return Article(
        id=version.article_id,
        title=version.title,
        answer=version.answer,
        questions=tuple(version.questions or ()),
        tags=tuple(version.tags or ()),
        team=version.team,
        always_human=bool(version.always_human),
    )


# ---------------------------------------------------------------------------------------------------------------
# The revision token


async def revision(s: AsyncSession) -> int:
    """The KB revision: changes whenever the published KB does. One primary-key lookup."""
    value = (await s.execute(select(KBMeta.revision).where(KBMeta.id == META_ID))).scalar_one_or_none()
    return int(value or 0)


async def _bump_revision(s: AsyncSession) -> None:
    # An atomic increment in the database, so two editors publishing at once both move the revision.
    result = await s.execute(update(KBMeta).where(KBMeta.id == META_ID).values(revision=KBMeta.revision + 1))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        s.add(KBMeta(id=META_ID, revision=1))
        await s.flush()


# ---------------------------------------------------------------------------------------------------------------
# Reading


async def _row(s: AsyncSession, article_id: str) -> KBArticle:
    row = await s.get(KBArticle, article_id)
    if row is None:
        raise NotFound(f"No article {article_id!r}.")
    return row


async def _version(s: AsyncSession, version_id: int | None) -> KBArticleVersion | None:
    return None if version_id is None else await s.get(KBArticleVersion, version_id)


async def view(s: AsyncSession, article_id: str) -> ArticleView:
    row = await _row(s, article_id)
    return await _view_of(s, row)


async def _view_of(s: AsyncSession, row: KBArticle) -> ArticleView:
    latest = await _version(s, row.latest_version_id)
    assert latest is not None, f"article {row.id} has no version"
    published = await _version(s, row.published_version_id)
    return ArticleView(
        article=article_of(latest),
        status=row.status,
        latest_version=latest.number,
        published_version=published.number if published else None,
        updated_at=row.updated_at.isoformat(),
    )


async def latest_version(s: AsyncSession, article_id: str) -> KBArticleVersion:
    version = await _version(s, (await _row(s, article_id)).latest_version_id)
    assert version is not None
    return version


async def versions(s: AsyncSession, article_id: str) -> list[KBArticleVersion]:
    await _row(s, article_id)
    result = await s.execute(
        select(KBArticleVersion)
        .where(KBArticleVersion.article_id == article_id)
        .order_by(KBArticleVersion.number.desc())
    )
    return list(result.scalars())


async def list_articles(s: AsyncSession, query: str | None = None, status: str | None = None) -> list[ArticleView]:
    """All articles (newest content), optionally filtered by a search text and a status.

    Search is a case-insensitive substring match over title, answer, questions and tags, done in Python: a KB is
    hundreds to a few thousand articles, and this works the same on SQLite and PostgreSQL without a search index.
    """
    stmt = select(KBArticle, KBArticleVersion).join(
        KBArticleVersion, KBArticleVersion.id == KBArticle.latest_version_id
    )
    if status:
        stmt = stmt.where(KBArticle.status == status)
    rows = (await s.execute(stmt.order_by(KBArticle.created_at, KBArticle.id))).all()
    published_numbers = await _numbers(s, [r.published_version_id for r, _ in rows if r.published_version_id])
    needle = (query or "").strip().lower()
    out: list[ArticleView] = []
    for row, latest in rows:
        article = article_of(latest)
        if needle and needle not in _haystack(article):
            continue
        out.append(
            ArticleView(
                article=article,
                status=row.status,
                latest_version=latest.number,
                published_version=published_numbers.get(row.published_version_id or -1),
                updated_at=row.updated_at.isoformat(),
            )
        )
    return out


async def _numbers(s: AsyncSession, version_ids: Sequence[int]) -> dict[int, int]:
    if not version_ids:
        return {}
    result = await s.execute(
        select(KBArticleVersion.id, KBArticleVersion.number).where(KBArticleVersion.id.in_(version_ids))
    )
    return {vid: number for vid, number in result.all()}


def _haystack(article: Article) -> str:
    return "\n".join([article.id, article.title, article.answer, *article.questions, *article.tags]).lower()


async def published_kb(s: AsyncSession) -> KnowledgeBase:
    """What the bot answers from: the live version of every published article."""
    stmt = (
        select(KBArticleVersion)
        .join(KBArticle, KBArticle.published_version_id == KBArticleVersion.id)
        .where(KBArticle.status == "published")
        .order_by(KBArticle.created_at, KBArticle.id)
    )
    return KnowledgeBase(tuple(article_of(v) for v in (await s.execute(stmt)).scalars()))


async def latest_kb(s: AsyncSession) -> KnowledgeBase:
    """Every article's newest content, drafts included (for exports that editors re-import)."""
    return KnowledgeBase(tuple(v.article for v in await list_articles(s)))


async def count_articles(s: AsyncSession) -> int:
    return int((await s.execute(select(func.count()).select_from(KBArticle))).scalar_one())


# ---------------------------------------------------------------------------------------------------------------
# Writing


async def _check_title_free(s: AsyncSession, title: str, article_id: str) -> None:
    """Two articles with one title would confuse customers choosing between them ("Did you mean...?")."""
    stmt = (
        select(KBArticle.id)
        .join(KBArticleVersion, KBArticleVersion.id == KBArticle.latest_version_id)
        .where(func.lower(KBArticleVersion.title) == title.lower(), KBArticle.id != article_id)
    )
    other = (await s.execute(stmt)).scalars().first()
    if other is not None:
        raise Conflict(f"Article {other!r} already has the title {title!r}.")


async def _append_version(
    s: AsyncSession, row: KBArticle, article: Article, author: str | None, note: str | None
) -> KBArticleVersion:
    number = (
        await s.execute(select(func.max(KBArticleVersion.number)).where(KBArticleVersion.article_id == row.id))
    ).scalar_one_or_none() or 0
    version = KBArticleVersion(
        article_id=row.id,
        number=number + 1,
        title=article.title,
        answer=article.answer,
        questions=list(article.questions),
        tags=list(article.tags),
        team=article.team,
        always_human=article.always_human,
        author=author,
        note=note,
    )
    s.add(version)
    await s.flush()
    row.latest_version_id = version.id
    row.updated_at = utcnow()
    return version


async def create_article(
    s: AsyncSession, article: Article, author: str | None = None, note: str | None = None
) -> KBArticleVersion:
    """A new article as a draft (version 1)."""
    if await s.get(KBArticle, article.id) is not None:
        raise Conflict(f"An article with the id {article.id!r} already exists.")
    await _check_title_free(s, article.title, article.id)
    row = KBArticle(id=article.id, status="draft")
    s.add(row)
    await s.flush()
    return await _append_version(s, row, article, author, note)


async def save_version(
    s: AsyncSession, article: Article, author: str | None = None, note: str | None = None
) -> KBArticleVersion:
    """An edit: a new version of an existing article. The live version does not change until ``publish``."""
    row = await _row(s, article.id)
    await _check_title_free(s, article.title, article.id)
    return await _append_version(s, row, article, author, note)


async def add_questions(
    s: AsyncSession, article_id: str, questions: Iterable[str], author: str | None = None
) -> KBArticleVersion:
    """A new version with more example questions (ones it already has, ignoring case and spaces, are skipped)."""
    latest = (await view(s, article_id)).article
    known = {_norm(q) for q in latest.questions}
    added: list[str] = []
    for q in questions:
        if q.strip() and _norm(q) not in known:
            known.add(_norm(q))
            added.append(" ".join(q.split()))
    if not added:
        raise InvalidArticle("No new example questions: they are empty or the article already has them.")
    article = replace(latest, questions=(*latest.questions, *added))
    return await save_version(s, article, author, note=f"added {len(added)} example question(s)")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


async def publish(s: AsyncSession, article_id: str, version_number: int | None = None) -> KBArticleVersion:
    """Make a version live (default: the newest) and bump the KB revision."""
    row = await _row(s, article_id)
    if version_number is None:
        version = await _version(s, row.latest_version_id)
    else:
        version = await _by_number(s, article_id, version_number)
    assert version is not None
    row.published_version_id = version.id
    row.status = "published"
    row.updated_at = utcnow()
    await _bump_revision(s)
    return version


async def unpublish(s: AsyncSession, article_id: str) -> None:
    row = await _row(s, article_id)
    if row.status != "published":
        return
    row.status, row.published_version_id, row.updated_at = "draft", None, utcnow()
    await _bump_revision(s)


async def rollback(
    s: AsyncSession, article_id: str, version_number: int, author: str | None = None
) -> KBArticleVersion:
    """Publish an earlier version's content as a new version: history only ever grows."""
    old = await _by_number(s, article_id, version_number)
    article = article_of(old)
    row = await _row(s, article_id)
    await _check_title_free(s, article.title, article_id)
    version = await _append_version(s, row, article, author, note=f"rollback to v{version_number}")
    await publish(s, article_id)
    return version


async def _by_number(s: AsyncSession, article_id: str, number: int) -> KBArticleVersion:
    stmt = select(KBArticleVersion).where(KBArticleVersion.article_id == article_id, KBArticleVersion.number == number)
    version = (await s.execute(stmt)).scalar_one_or_none()
    if version is None:
        raise NotFound(f"Article {article_id!r} has no version {number}.")
    return version


async def import_kb(
    s: AsyncSession, kb: KnowledgeBase, author: str | None = None, publish_all: bool = True
) -> ImportResult:
    """Create or update every article of ``kb`` (and publish them, by default).

    All or nothing: it raises on the first problem and the caller's transaction rolls everything back.
    """
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    incoming = {a.id for a in kb.articles}
    for article in kb.articles:
        row = await s.get(KBArticle, article.id)
        # Titles are checked against articles the import does not itself replace.
        await _check_title_free_except(s, article.title, incoming)
        if row is None:
            await create_article(s, article, author, note="import")
            created.append(article.id)
        else:
            current = (await view(s, article.id)).article
            if current == article:
                unchanged.append(article.id)
                if not publish_all or row.published_version_id == row.latest_version_id:
                    continue
            else:
                await _append_version(s, row, article, author, note="import")
                updated.append(article.id)
        if publish_all:
            await publish(s, article.id)
    return ImportResult(tuple(created), tuple(updated), tuple(unchanged))


async def _check_title_free_except(s: AsyncSession, title: str, ids: set[str]) -> None:
    stmt = (
        select(KBArticle.id)
        .join(KBArticleVersion, KBArticleVersion.id == KBArticle.latest_version_id)
        .where(func.lower(KBArticleVersion.title) == title.lower(), KBArticle.id.not_in(ids))
    )
    other = (await s.execute(stmt)).scalars().first()
    if other is not None:
        raise Conflict(f"Article {other!r} already has the title {title!r}.")


async def seed_if_empty(s: AsyncSession, kb: KnowledgeBase) -> bool:
    """Load ``kb`` (the demo YAML) as published articles when the KB has none; True if it did."""
    if await count_articles(s) > 0:
        return False
    await import_kb(s, kb, author=None, publish_all=True)
    return True
