"""Request bodies of the KB editor API (one pydantic model each) and the JSON shapes it answers with."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from knowledge.importers import Format
from knowledge.models import KBArticleVersion
from knowledge.store import ArticleView, article_of

MAX_ANSWER_CHARS = 20_000
MAX_QUESTIONS = 5_000  # a Bitext intent has about 200; this only stops runaway pastes
MAX_IMPORT_CHARS = 20_000_000  # the 3.5 MB Bitext sample fits several times over


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ArticleContent(_Body):
    title: str = Field(min_length=1, max_length=200)
    answer: str = Field(min_length=1, max_length=MAX_ANSWER_CHARS)
    questions: list[str] = Field(min_length=1, max_length=MAX_QUESTIONS)
    tags: list[str] = Field(default_factory=list, max_length=50)
    team: str = Field(default="support", min_length=1, max_length=64)
    always_human: bool = False


class NewArticle(ArticleContent):
    id: str = Field(min_length=1, max_length=64)


class AddQuestions(_Body):
    questions: list[str] = Field(min_length=1, max_length=MAX_QUESTIONS)
    publish: bool = False


class Publish(_Body):
    version: int | None = Field(default=None, ge=1)  # default: the newest


class Rollback(_Body):
    version: int = Field(ge=1)


class Import(_Body):
    format: Format
    content: str = Field(min_length=1, max_length=MAX_IMPORT_CHARS)
    publish: bool = True


class QuestionIds(_Body):
    question_ids: list[int] = Field(min_length=1, max_length=5_000)


class GroupToNewArticle(QuestionIds):
    id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=200)
    answer: str = Field(min_length=1, max_length=MAX_ANSWER_CHARS)
    questions: list[str] = Field(default_factory=list)  # extra ones; the group's questions are always added
    tags: list[str] = Field(default_factory=list)
    team: str = Field(default="support", min_length=1, max_length=64)
    always_human: bool = False
    publish: bool = False


class GroupToArticle(QuestionIds):
    article_id: str = Field(min_length=1, max_length=64)
    publish: bool = False


class ListQuery(_Body):
    q: str | None = Field(default=None, max_length=200)
    status: Literal["draft", "published"] | None = None


class ExportQuery(_Body):
    format: Literal["yaml", "csv"] = "yaml"
    drafts: bool = False


def article_json(v: ArticleView) -> dict[str, Any]:
    a = v.article
    return {
        "id": a.id,
        "intent": a.intent,
        "title": a.title,
        "answer": a.answer,
        "questions": list(a.questions),
        "tags": list(a.tags),
        "team": a.team,
        "always_human": a.always_human,
        "status": v.status,
        "latest_version": v.latest_version,
        "published_version": v.published_version,
        "has_unpublished_changes": v.has_unpublished_changes,
        "updated_at": v.updated_at,
    }


def version_json(version: KBArticleVersion, published_number: int | None) -> dict[str, Any]:
    a = article_of(version)
    return {
        "number": version.number,
        "title": a.title,
        "answer": a.answer,
        "questions": list(a.questions),
        "tags": list(a.tags),
        "team": a.team,
        "always_human": a.always_human,
        "author": version.author,
        "note": version.note,
        "created_at": version.created_at.isoformat(),
        "published": version.number == published_number,
    }
