"""KB import and export formats, as pure functions from text to a ``KnowledgeBase`` and back.

Formats:

* ``yaml``: the demo file's format (``articles: [{id, title, answer, questions, tags, team, always_human}]``).
* ``csv``: one article per row; columns ``id,title,answer,questions`` (required) and ``tags,team,always_human``;
  ``questions`` holds one question per line inside the cell, ``tags`` is comma-separated.
* ``bitext``: the Bitext customer-support CSV (``instruction,intent,response,category,...``): one article per
  intent, its user utterances as the questions and its first response as the answer.

Every parser checks the whole file before returning and raises ``ImportFailed`` naming the first bad row, so a
caller that stores the result in one transaction changes nothing on a bad file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Literal

import yaml

from common.errors import ImportFailed
from knowledge.articles import Article, ArticleError, KnowledgeBase, parse_article

Format = Literal["yaml", "csv", "bitext"]
FORMATS: tuple[Format, ...] = ("yaml", "csv", "bitext")
CSV_REQUIRED = ("id", "title", "answer", "questions")
CSV_OPTIONAL = ("tags", "team", "always_human")
BITEXT_REQUIRED = ("instruction", "intent", "response")
TRUE_WORDS = {"1", "true", "yes", "y"}
FALSE_WORDS = {"", "0", "false", "no", "n"}


def parse(text: str, fmt: Format) -> KnowledgeBase:
    if fmt == "yaml":
        return parse_yaml(text)
    if fmt == "csv":
        return parse_csv(text)
    if fmt == "bitext":
        return parse_bitext(text)
    raise ImportFailed(f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)}.")


def export(kb: KnowledgeBase, fmt: Format) -> str:
    if fmt == "yaml":
        return to_yaml(kb)
    if fmt == "csv":
        return to_csv(kb)
    raise ImportFailed(f"Cannot export as {fmt!r}: use yaml or csv.")


def guess_format(filename: str, text: str) -> Format:
    """From the file name, and for CSV the header (a Bitext file has an ``instruction`` column)."""
    if filename.lower().endswith((".yml", ".yaml")):
        return "yaml"
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    return "bitext" if set(BITEXT_REQUIRED) <= {h.strip() for h in header} else "csv"


def checked(articles: Iterable[Article], unit: str = "article", first: int = 1) -> KnowledgeBase:
    """Refuse duplicate ids and titles (case-insensitive), naming the repeating ``unit`` (article 3, row 4...)."""
    ids: dict[str, int] = {}
    titles: dict[str, int] = {}
    out: list[Article] = []
    for n, article in enumerate(articles, start=first):
        if article.id in ids:
            raise ImportFailed(f"{unit} {n}: duplicate id {article.id!r} (also {unit} {ids[article.id]})")
        key = article.title.lower()
        if key in titles:
            raise ImportFailed(
                f"{unit} {n} ({article.id}): duplicate title {article.title!r} (also {unit} {titles[key]})"
            )
        ids[article.id], titles[key] = n, n
        out.append(article)
    if not out:
        raise ImportFailed("the file has no articles")
    return KnowledgeBase(tuple(out))


# ---------------------------------------------------------------------------------------------------------------
# YAML


def parse_yaml(text: str) -> KnowledgeBase:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportFailed(f"not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("articles"), list):
        raise ImportFailed("expected a mapping with an 'articles' list")
    articles: list[Article] = []
    for n, raw in enumerate(doc["articles"], start=1):
        try:
            articles.append(parse_article(raw, f"article {n}"))
        except ArticleError as exc:
            raise ImportFailed(str(exc)) from exc
    return checked(articles)


def to_yaml(kb: KnowledgeBase) -> str:
    return yaml.dump(
        {"articles": [_as_dict(a) for a in kb.articles]},
        Dumper=_BlockDumper,
        sort_keys=False,
        allow_unicode=True,
        width=120,
    )


def _as_dict(a: Article) -> dict[str, object]:
    return {
        "id": a.id,
        "title": a.title,
        "team": a.team,
        "tags": list(a.tags),
        "always_human": a.always_human,
        "questions": list(a.questions),
        "answer": a.answer + "\n",
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line answers as ``|`` blocks, so an exported file reads like the hand-written one."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_presenter)


# ---------------------------------------------------------------------------------------------------------------
# CSV


def _rows(text: str, required: tuple[str, ...], optional: tuple[str, ...] | None) -> list[tuple[int, dict[str, str]]]:
    """(row number, row) pairs; row 1 is the header. ``optional=None`` allows any extra column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in required if c not in columns]
    if missing:
        raise ImportFailed(
            f"row 1 (header): missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'}"
        )
    if optional is not None:
        unknown = [c for c in columns if c not in required and c not in optional]
        if unknown:
            allowed = ", ".join((*required, *optional))
            raise ImportFailed(f"row 1 (header): unknown column(s) {', '.join(unknown)}; allowed: {allowed}")
    out: list[tuple[int, dict[str, str]]] = []
    for n, raw in enumerate(reader, start=2):
        if None in raw:
            raise ImportFailed(f"row {n}: more cells than columns")
        out.append((n, {(k or "").strip(): (v or "") for k, v in raw.items()}))
    return out


def parse_csv(text: str) -> KnowledgeBase:
    articles: list[Article] = []
    for n, row in _rows(text, CSV_REQUIRED, CSV_OPTIONAL):
        flag = row.get("always_human", "").strip().lower()
        if flag not in TRUE_WORDS | FALSE_WORDS:
            raise ImportFailed(f"row {n}: always_human must be true or false, got {flag!r}")
        raw = {
            "id": row["id"].strip(),
            "title": row["title"],
            "answer": row["answer"],
            "questions": [q.strip() for q in row["questions"].splitlines() if q.strip()],
            "tags": [t.strip() for t in row.get("tags", "").split(",") if t.strip()],
            "team": row.get("team", "").strip() or "support",
            "always_human": flag in TRUE_WORDS,
        }
        try:
            articles.append(parse_article(raw, f"row {n}"))
        except ArticleError as exc:
            raise ImportFailed(str(exc)) from exc
    return checked(articles, unit="row", first=2)  # the header is row 1


def to_csv(kb: KnowledgeBase) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_REQUIRED, *CSV_OPTIONAL])
    for a in kb.articles:
        writer.writerow(
            [
                a.id,
                a.title,
                a.answer,
                "\n".join(a.questions),
                ",".join(a.tags),
                a.team,
                "true" if a.always_human else "false",
            ]
        )
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Bitext customer-support dataset


def parse_bitext(text: str) -> KnowledgeBase:
    """One article per intent: its distinct utterances as questions, its first response as the answer."""
    questions: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    answers: dict[str, str] = {}
    categories: dict[str, str] = {}
    for n, row in _rows(text, BITEXT_REQUIRED, None):
        intent, utterance, response = (
            row["intent"].strip(),
            " ".join(row["instruction"].split()),
            row["response"].strip(),
        )
        if not intent:
            raise ImportFailed(f"row {n}: the intent is empty")
        if not utterance:
            raise ImportFailed(f"row {n} ({intent}): the instruction (customer utterance) is empty")
        if not response:
            raise ImportFailed(f"row {n} ({intent}): the response is empty")
        if intent not in questions:
            questions[intent], seen[intent], answers[intent] = [], set(), response
            categories[intent] = row.get("category", "").strip().lower()
        if utterance.lower() not in seen[intent]:
            seen[intent].add(utterance.lower())
            questions[intent].append(utterance)
    articles: list[Article] = []
    for intent, qs in questions.items():
        raw = {
            "id": intent.lower().replace("_", "-"),
            "title": intent.replace("_", " ").capitalize(),
            "answer": answers[intent],
            "questions": qs,
            "tags": [categories[intent]] if categories[intent] else [],
            "team": categories[intent] or "support",
        }
        try:
            articles.append(parse_article(raw, f"intent {intent}"))
        except ArticleError as exc:
            raise ImportFailed(str(exc)) from exc
    return checked(articles)
