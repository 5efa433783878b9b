"""Group similar unanswered questions, so an editor handles "how do I get a refund" once, not forty times.

TF-IDF over word 1-2 grams and char_wb 3-5 grams (robust to typos and word order), cosine similarity, and
average-link agglomerative clustering cut at a fixed similarity: a question joins a group when it is, on average,
similar to all of it, which keeps one vague question from chaining two topics together (single link would).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Average cosine similarity needed to share a group. On these features close rewordings of one question score
# about 0.3-0.55 and different topics below 0.1; 0.3 groups rewordings without merging topics (tests/test_kb_grouping).
# Paraphrases with no words in common ("I want my money back" / "refund?") stay apart: editors merge those by hand.
MIN_SIMILARITY = 0.3


@dataclass(frozen=True)
class Group:
    """Questions (ids and texts, most typical first) that ask the same thing."""

    ids: tuple[int, ...]
    texts: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.texts[0]


def similarity_matrix(texts: Sequence[str]) -> np.ndarray:
    # Imported here, not at the top: every relay process imports this module (the KB editor's inbox) and would
    # otherwise load scikit-learn and SciPy at start (1.5 s, tens of MB each) for a page an editor opens now and then.
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True)
    features = normalize(hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr())
    return np.asarray((features @ features.T).toarray(), dtype=np.float64)


def group_questions(items: Sequence[tuple[int, str]], min_similarity: float = MIN_SIMILARITY) -> list[Group]:
    """Cluster (id, text) pairs; groups come biggest first, ties by the oldest question (lowest id)."""
    items = [(i, t) for i, t in items if t.strip()]
    if not items:
        return []
    if len(items) == 1:
        return [Group((items[0][0],), (items[0][1],))]
    from sklearn.cluster import AgglomerativeClustering  # see similarity_matrix

    texts = [t for _, t in items]
    sims = np.clip(similarity_matrix(texts), 0.0, 1.0)
    labels = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=1.0 - min_similarity
    ).fit_predict(1.0 - sims)
    groups: list[Group] = []
    for label in set(labels.tolist()):
        members = [k for k in range(len(items)) if labels[k] == label]
        # Most typical first: the member most similar to the rest of its group names it in the inbox.
        centrality = {k: float(sims[k, members].sum()) for k in members}
        members.sort(key=lambda k: (-centrality[k], items[k][0]))
        groups.append(Group(tuple(items[k][0] for k in members), tuple(items[k][1] for k in members)))
    groups.sort(key=lambda g: (-len(g.ids), min(g.ids)))
    return groups
