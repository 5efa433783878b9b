"""KB import and export formats (knowledge/importers.py): round trips, clear errors, the Bitext dataset."""

from __future__ import annotations

import pytest

from common.errors import ImportFailed
from common.settings import Settings
from knowledge import importers
from knowledge.articles import KnowledgeBase, load_kb
from tests.kb_fixtures import require_dataset

BITEXT = "bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv"
HEADER = "id,title,answer,questions,tags,team,always_human\n"


@pytest.fixture(scope="module")
def demo() -> KnowledgeBase:
    return load_kb(Settings().kb_path)


def test_yaml_and_csv_round_trip_the_demo_kb(demo: KnowledgeBase) -> None:
    assert importers.parse_yaml(importers.to_yaml(demo)) == demo
    assert importers.parse_csv(importers.to_csv(demo)) == demo
    assert importers.guess_format("kb.csv", importers.to_csv(demo)) == "csv"
    assert importers.guess_format("kb.yml", "") == "yaml"


def test_csv_reads_multi_line_questions_and_flags() -> None:
    text = (
        HEADER
        + 'refunds,Refunds,"Ask a person.","how do I get a refund\nmoney back please","billing, refunds",billing,yes\n'
    )
    (article,) = importers.parse_csv(text).articles
    assert article.questions == ("how do I get a refund", "money back please")
    assert article.tags == ("billing", "refunds") and article.team == "billing" and article.always_human


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,title,answer\nx,X,y\n", "row 1 (header): missing column(s) questions"),
        ("id,title,answer,questions,colour\nx,X,y,z,red\n", "row 1 (header): unknown column(s) colour"),
        (HEADER + "a,A,ok,q\nb,B,,q\n", "row 3 (b): answer is empty"),
        (HEADER + "a,A,ok,q\nb,a,ok,q\n", "row 3 (b): duplicate title 'a' (also row 2)"),
        (HEADER + "a,A,ok,q\na,B,ok,q\n", "row 3: duplicate id 'a' (also row 2)"),
        (HEADER + "Not A Slug,A,ok,q\n", "row 2: id must be a lowercase slug"),
        (HEADER + "a,A,ok,q,,,maybe\n", "row 2: always_human must be true or false"),
        (HEADER + "a,A,ok,\n", "row 2 (a): needs at least 1 example question"),
        (HEADER, "the file has no articles"),
    ],
)
def test_bad_csv_names_the_row(text: str, message: str) -> None:
    with pytest.raises(ImportFailed) as caught:
        importers.parse_csv(text)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("articles: [", "not valid YAML"),
        ("- a\n", "expected a mapping with an 'articles' list"),
        (
            "articles:\n- {id: a, title: A, answer: ok, questions: [q]}\n- {id: b, title: B, answer: '', questions: [q]}\n",
            "article 2 (b): answer is empty",
        ),
        (
            "articles:\n- {id: a, title: A, answer: ok, questions: [q]}\n- {id: a, title: B, answer: ok, questions: [q]}\n",
            "article 2: duplicate id 'a'",
        ),
    ],
)
def test_bad_yaml_names_the_article(text: str, message: str) -> None:
    with pytest.raises(ImportFailed) as caught:
        importers.parse_yaml(text)
    assert message in caught.value.message


def test_bitext_dataset_becomes_one_article_per_intent() -> None:
    text = require_dataset(BITEXT).read_text(encoding="utf-8")
    assert importers.guess_format("Bitext.csv", text) == "bitext"
    kb = importers.parse_bitext(text)
    assert len(kb.articles) == 27
    by_id = {a.id: a for a in kb.articles}
    assert {"cancel-order", "recover-password", "contact-human-agent", "track-refund"} <= set(by_id)
    # 4,514 rows; utterances repeated within an intent (ignoring case and spacing) are kept once.
    assert sum(len(a.questions) for a in kb.articles) == 4448
    assert len(by_id["delivery-period"].questions) == len({q.lower() for q in by_id["delivery-period"].questions})
    assert all(len(a.questions) >= 130 for a in kb.articles)
    cancel = by_id["cancel-order"]
    assert cancel.title == "Cancel order" and cancel.team == "order" and cancel.tags == ("order",)
    assert "cancel" in cancel.answer.lower() and "how can I cancel purchase 113542617735902?" in cancel.questions


def test_bitext_row_without_a_response_is_refused() -> None:
    text = "instruction,intent,response,category\nhello,greet,hi,X\nbye,greet,,X\n"
    with pytest.raises(ImportFailed, match=r"row 3 \(greet\): the response is empty"):
        importers.parse_bitext(text)
