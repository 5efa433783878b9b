"""Unit tests of the deflection decision (knowledge/retrieval.py, tuning.py, embeddings.py) on a small hand-made
KB.

They use a tiny deterministic hashing "embedder" instead of the real sentence model, so they run in seconds and
need neither torch nor a server; the real model is exercised by bench/clinc150.py.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from knowledge.articles import Article, KnowledgeBase
from knowledge.embeddings import SentenceEmbedder
from knowledge.retrieval import Decision, Retriever, Scored, Thresholds, decide_from_ranking
from knowledge.tuning import tune_thresholds, tune_thresholds_from_rankings

DIM = 256


def hash_vector(text: str) -> np.ndarray:
    """Bag of words and word bigrams hashed into DIM buckets, L2-normalised: a stand-in for sentence embeddings."""
    words = text.lower().replace("?", " ").replace(",", " ").split()
    vec = np.zeros(DIM, dtype=np.float32)
    for gram in words + [a + " " + b for a, b in itertools.pairwise(words)]:
        vec[int(hashlib.md5(gram.encode()).hexdigest(), 16) % DIM] += 1.0
    return vec / max(float(np.linalg.norm(vec)), 1e-9)


class HashEmbedder:
    """Implements the Embedder protocol; counts how many texts it was asked to encode."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        return np.stack([hash_vector(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)


class CountingSentenceEmbedder(SentenceEmbedder):
    """The real cache code of SentenceEmbedder with the model replaced by the hashing stand-in."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        super().__init__(model_path="test-hash-model", cache_dir=cache_dir)
        self.seen: list[str] = []

    def _model_encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        self.encoded_count += len(texts)
        return np.stack([hash_vector(t) for t in texts])


def article(aid: str, *questions: str) -> Article:
    return Article(id=aid, title=aid.replace("-", " "), answer=f"Answer about {aid}.", questions=tuple(questions))


KB = KnowledgeBase(
    (
        article(
            "reset-password",
            "how do i reset my password",
            "i forgot my password",
            "can't log in, forgot password",
            "change my password please",
            "password reset link not working",
            "how to recover my account password",
        ),
        article(
            "refund",
            "i want a refund",
            "how do i get my money back",
            "can i return this and get a refund",
            "refund my order please",
            "when will my refund arrive",
            "request a refund for my purchase",
        ),
        article(
            "shipping-time",
            "how long does shipping take",
            "when will my order arrive",
            "delivery time for my parcel",
            "how many days until my package ships",
            "is express shipping faster",
            "where is my package",
        ),
        article(
            "opening-hours",
            "what are your opening hours",
            "when are you open",
            "are you open on sunday",
            "what time do you close",
            "opening times of the store",
            "is the shop open today",
        ),
    )
)
OOS_TRAIN = ("what is the weather like tomorrow", "tell me a joke", "who won the football game yesterday")


@pytest.fixture(scope="module")
def retriever() -> Retriever:
    return Retriever.build(KB, OOS_TRAIN, embedder=HashEmbedder())


# -- rank ------------------------------------------------------------------------------------------------------


def test_rank_puts_the_matching_article_first(retriever: Retriever) -> None:
    assert retriever.rank("i forgot my password, how do i reset it")[0].article_id == "reset-password"
    assert retriever.rank("i would like a refund for my order")[0].article_id == "refund"
    assert retriever.rank("are you open on saturday")[0].article_id == "opening-hours"


def test_rank_is_sorted_calibrated_and_respects_k(retriever: Retriever) -> None:
    ranked = retriever.rank("how long until my package arrives", k=3)
    assert len(ranked) == 3
    assert len({s.article_id for s in ranked}) == 3
    scores = [s.score for s in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len(retriever.rank("refund", k=10)) == len(KB.articles)  # never more than there are articles


def test_in_scope_scores_higher_than_out_of_scope(retriever: Retriever) -> None:
    inside = retriever.rank("how do i reset my password")[0].score
    outside = retriever.rank("what is the capital of mongolia")[0].score
    assert inside > outside


def test_batched_and_single_ranking_agree(retriever: Retriever) -> None:
    texts = ["refund please", "when are you open", "what's the weather"]
    batched = retriever.rank_many(texts, 2)
    for text, ranked in zip(texts, batched, strict=True):
        single = retriever.rank(text, 2)
        assert [s.article_id for s in single] == [s.article_id for s in ranked]
        assert [s.score for s in single] == pytest.approx([s.score for s in ranked], abs=1e-5)


def test_tfidf_only_mode_without_embeddings() -> None:
    r = Retriever.build(KB, OOS_TRAIN, embedder=None)
    assert not r.uses_embeddings
    assert r.rank("how do i get my money back")[0].article_id == "refund"


def test_single_article_kb_without_oos_examples() -> None:
    r = Retriever.build(KnowledgeBase((KB.articles[0],)), embedder=HashEmbedder())
    ranked = r.rank("reset password")
    assert [s.article_id for s in ranked] == ["reset-password"]
    assert 0.0 <= ranked[0].score <= 1.0


def test_empty_kb_is_rejected() -> None:
    with pytest.raises(ValueError):
        Retriever.build(KnowledgeBase(()), embedder=None)


# -- decide ----------------------------------------------------------------------------------------------------


def s(aid: str, score: float) -> Scored:
    return Scored(aid, score)


def test_decide_answer_choices_escalate_rule() -> None:
    th = Thresholds(answer=0.7, choices=0.3)
    assert decide_from_ranking([s("a", 0.9), s("b", 0.05)], th) == Decision("answer", (s("a", 0.9),))
    # plausible: top below answer but above choices; runner-ups offered if at least CHOICE_RATIO of the top
    d = decide_from_ranking([s("a", 0.5), s("b", 0.4), s("c", 0.01)], th)
    assert d.kind == "choices" and [c.article_id for c in d.candidates] == ["a", "b"]
    d = decide_from_ranking([s("a", 0.2), s("b", 0.1)], th)
    assert d.kind == "escalate" and [c.article_id for c in d.candidates] == ["a", "b"]  # hints for the agent
    assert decide_from_ranking([], th) == Decision("escalate", ())
    # boundaries are inclusive
    assert decide_from_ranking([s("a", 0.7)], th).kind == "answer"
    assert decide_from_ranking([s("a", 0.3)], th).kind == "choices"


def test_decide_with_the_retriever(retriever: Retriever) -> None:
    inside = retriever.rank("how do i reset my password")[0].score
    outside = retriever.rank("what is the capital of mongolia")[0].score
    th = Thresholds(answer=inside - 1e-6, choices=outside + 1e-6)
    d = retriever.decide("how do i reset my password", th)
    assert d.kind == "answer" and d.candidates[0].article_id == "reset-password"
    assert retriever.decide("what is the capital of mongolia", th).kind == "escalate"
    assert retriever.decide("how do i reset my password").kind in {"answer", "choices", "escalate"}  # defaults


# -- tune_thresholds -------------------------------------------------------------------------------------------


def test_tune_thresholds_on_toy_rankings() -> None:
    in_rank = [
        [s("a", 0.9), s("b", 0.05)],  # right, confident
        [s("b", 0.8), s("a", 0.1)],  # right, confident
        [s("a", 0.45), s("b", 0.4)],  # wrong top, right article second: a choices prompt helps
        [s("b", 0.6), s("a", 0.2)],  # right, less confident
    ]
    gold = ["a", "b", "b", "b"]
    oos_rank = [[s("a", 0.3), s("b", 0.2)], [s("b", 0.5), s("a", 0.1)]]
    th = tune_thresholds_from_rankings(in_rank, gold, oos_rank)
    # Answering at >= 0.6 keeps all three right answers and escalates both oos (0.5 and 0.3): joint 5/6; among
    # the tied thresholds (0.5 < t <= 0.6) the highest is taken.
    assert th.answer == pytest.approx(0.6)
    # Band [0.45, 0.6) catches the ambiguous in-scope message (+1) and the 0.5 oos one (-1); [0.5, 0.6) catches
    # only the oos one (-1); an empty band scores 0, so the tie between 0.45 and 0.6 goes to the empty band.
    assert th.choices == pytest.approx(0.6)
    # Weighting out-of-scope messages up can only make answering stricter.
    th_heavy = tune_thresholds_from_rankings(in_rank, gold, oos_rank, oos_share=0.9)
    assert th_heavy.answer >= th.answer
    # Deterministic
    assert tune_thresholds_from_rankings(in_rank, gold, oos_rank) == th


def test_tune_thresholds_opens_a_choices_band_when_it_pays() -> None:
    in_rank = [[s("a", 0.9)], [s("b", 0.4), s("a", 0.35)], [s("a", 0.42), s("b", 0.41)]]
    gold = ["a", "a", "b"]
    oos_rank = [[s("a", 0.1)]]
    th = tune_thresholds_from_rankings(in_rank, gold, oos_rank)
    assert th.answer == pytest.approx(0.9)
    assert th.choices == pytest.approx(0.4)  # both ambiguous in-scope messages get their article offered
    assert th.choices <= th.answer


def test_tune_thresholds_end_to_end(retriever: Retriever) -> None:
    val_in = [
        ("how can i reset my password", "reset-password"),
        ("i need my money back", "refund"),
        ("how long will delivery take", "shipping-time"),
        ("is the store open on sunday", "opening-hours"),
    ]
    val_oos = ["what's the weather in paris", "play some music", "book a flight to rome"]
    th = tune_thresholds(retriever, val_in, val_oos)
    assert 0.0 <= th.choices <= th.answer <= 1.0 + 1e-6
    assert th == tune_thresholds(retriever, val_in, val_oos)
    decisions = [retriever.decide(t, th) for t, _ in val_in]
    answered = sum(
        d.kind == "answer" and d.candidates[0].article_id == g for d, (_, g) in zip(decisions, val_in, strict=True)
    )
    escalated = sum(retriever.decide(t, th).kind == "escalate" for t in val_oos)
    assert answered + escalated >= 5  # at least as good as always answering (4/7) or always escalating (3/7)


# -- embedding cache -------------------------------------------------------------------------------------------


def test_rebuild_after_edit_only_encodes_changed_questions(tmp_path: Path) -> None:
    emb = CountingSentenceEmbedder(cache_dir=tmp_path)
    Retriever.build(KB, OOS_TRAIN, embedder=emb)
    n_texts = sum(len(a.questions) for a in KB.articles) + len(OOS_TRAIN)
    assert emb.encoded_count == n_texts

    first = KB.articles[0]
    edited = Article(first.id, first.title, first.answer, first.questions + ("my password expired",))
    kb2 = KnowledgeBase((edited,) + KB.articles[1:])
    emb.seen.clear()
    r2 = Retriever.build(kb2, OOS_TRAIN, embedder=emb)
    assert emb.seen == ["my password expired"]  # only the new question went through the model
    assert r2.rank("my password expired")[0].article_id == "reset-password"

    # Customer messages are not cached (they would grow the cache without bound).
    before = emb.encoded_count
    r2.rank("my password expired")
    assert emb.encoded_count == before + 1

    # A new process with the same cache dir encodes nothing for an unchanged KB.
    fresh = CountingSentenceEmbedder(cache_dir=tmp_path)
    Retriever.build(kb2, OOS_TRAIN, embedder=fresh)
    assert fresh.encoded_count == 0


# -- the embedding logistic regression --------------------------------------------------------------------------


def test_softmax_regression_reaches_scikit_learns_minimum() -> None:
    from sklearn.linear_model import LogisticRegression

    from knowledge.retrieval import _Linear

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))
    y = rng.integers(0, 5, size=300)
    x = centres[y] + rng.normal(scale=1.5, size=(300, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mine = _Linear.fit_softmax(x, y, 5, c=10.0)
    reference = LogisticRegression(C=10.0, max_iter=5000, tol=1e-8).fit(x, y)
    expected = x @ reference.coef_.T + reference.intercept_
    got = mine.scores(x.astype(np.float32))
    assert got.shape == (300, 5)
    np.testing.assert_allclose(got, expected, atol=0.05)  # same objective, same (unique) minimum
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() == 1.0
    # Probabilities agree too, and the shift-invariant logits keep scikit-learn's zero-sum convention.
    np.testing.assert_allclose(got.sum(axis=1), expected.sum(axis=1), atol=0.05)
