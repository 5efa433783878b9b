"""KB tables: articles, their version history, the KB revision counter and the unanswered-questions inbox.

Every save is a new immutable ``kb_article_versions`` row; an article only points at the version that is live
(``published_version_id``), so publishing and rolling back never rewrite history. ``kb_meta.revision`` goes up in
the same transaction as anything that changes the published KB, so readers (the action server) can tell whether
they are stale with one primary-key lookup.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from common.db import Base, UtcDateTime


class KBArticle(Base):
    __tablename__ = "kb_articles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # slug; the Rasa intent is kb_<slug>
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | published
    # The live version; None while the article has never been published (or was unpublished). Plain integers,
    # not foreign keys: a cycle between the two tables would need ALTERs that SQLite cannot do in place.
    published_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latest_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class KBArticleVersion(Base):
    __tablename__ = "kb_article_versions"
    __table_args__ = (Index("ix_kb_article_versions_article_id_number", "article_id", "number", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, 3... per article, what editors see
    title: Mapped[str] = mapped_column(String(200))
    answer: Mapped[str] = mapped_column(Text)  # Markdown
    questions: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    team: Mapped[str] = mapped_column(String(64), default="support")
    always_human: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    author: Mapped[str | None] = mapped_column(String(64), nullable=True)  # agent username; None for imports
    note: Mapped[str | None] = mapped_column(String(200), nullable=True)  # "rollback to v2", "import", ...
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class KBMeta(Base):
    """One row (id 1): the KB revision, bumped by every change to the published KB."""

    __tablename__ = "kb_meta"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class UnansweredQuestion(Base):
    """A customer message the bot could not answer; open until an editor turns it into KB content or dismisses it."""

    __tablename__ = "kb_unanswered"
    __table_args__ = (Index("ix_kb_unanswered_open", "resolved_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    conversation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(
        String(32)
    )  # not_sure | choices | low_confidence | failed_turns | customer_asked
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # What became of it: the article it now belongs to, or None when dismissed.
    article_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
