"""Offline tuning of the deflection decision on labelled validation data (used by the benchmark, not at run time).

``tune_thresholds`` picks the answer and choices thresholds; ``fit_calibration`` fits the logistic calibration
whose constants live in knowledge/retrieval.py (``bench/clinc150.py --fit-calibration`` prints them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from knowledge.retrieval import MAX_CHOICES, Retriever, Scored, Thresholds, decide_from_ranking


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
    feats, log_p = retriever.features(texts)
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
