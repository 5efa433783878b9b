"""KB articles and the YAML file format they are kept in.

An article is one thing the bot can answer: an id (slug), a title, a Markdown answer and the example questions
customers ask about it. The demo KB lives in ``knowledge/demo/articles.yml``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MIN_QUESTIONS = 1


class ArticleError(ValueError):
    """A KB file or article is malformed; the message says where and why."""


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    answer: str
    questions: tuple[str, ...]
    tags: tuple[str, ...] = ()
    team: str = "support"
    # Some topics (refunds, complaints) must always reach a person, whatever the bot could say.
    always_human: bool = False

    @property
    def intent(self) -> str:
        """The Rasa intent name this article is trained as."""
        return "kb_" + self.id.replace("-", "_")


@dataclass(frozen=True)
class KnowledgeBase:
    articles: tuple[Article, ...] = field(default_factory=tuple)

    def by_id(self, article_id: str) -> Article | None:
        return next((a for a in self.articles if a.id == article_id), None)

    def by_intent(self, intent: str) -> Article | None:
        return next((a for a in self.articles if a.intent == intent), None)


def parse_article(raw: object, where: str) -> Article:
    if not isinstance(raw, dict):
        raise ArticleError(f"{where}: an article must be a mapping")
    article_id = raw.get("id")
    if not isinstance(article_id, str) or not SLUG_RE.match(article_id):
        raise ArticleError(f"{where}: id must be a lowercase slug (a-z, 0-9, -), got {article_id!r}")
    title, answer = raw.get("title"), raw.get("answer")
    if not isinstance(title, str) or not title.strip():
        raise ArticleError(f"{where} ({article_id}): title is empty")
    if not isinstance(answer, str) or not answer.strip():
        raise ArticleError(f"{where} ({article_id}): answer is empty")
    questions = raw.get("questions") or []
    if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
        raise ArticleError(f"{where} ({article_id}): questions must be a list of non-empty strings")
    if len(questions) < MIN_QUESTIONS:
        raise ArticleError(f"{where} ({article_id}): needs at least {MIN_QUESTIONS} example question")
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ArticleError(f"{where} ({article_id}): tags must be a list of strings")
    return Article(
        id=article_id,
        title=title.strip(),
        answer=answer.strip(),
        questions=tuple(q.strip() for q in questions),
        tags=tuple(tags),
        team=str(raw.get("team") or "support"),
        always_human=bool(raw.get("always_human", False)),
    )


def parse_articles(raws: Sequence[object], where: str) -> KnowledgeBase:
    articles = [parse_article(raw, f"{where}[{i}]") for i, raw in enumerate(raws)]
    seen: set[str] = set()
    for article in articles:
        if article.id in seen:
            raise ArticleError(f"{where}: duplicate article id {article.id!r}")
        seen.add(article.id)
    return KnowledgeBase(tuple(articles))


def load_kb(path: Path) -> KnowledgeBase:
    """Read a KB YAML file (``articles: [...]``); raises ArticleError with the position of the first problem."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ArticleError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("articles"), list):
        raise ArticleError(f"{path}: expected a mapping with an 'articles' list")
    return parse_articles(doc["articles"], str(path))
