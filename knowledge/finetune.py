"""Contrastive fine-tuning of the sentence encoder on the KB's own example questions (SetFit-style, CPU, seconds).

Why: frozen all-MiniLM-L6-v2 embeddings put paraphrases of different articles, and off-topic messages, too close
together for a KB of about ten questions per article. A short supervised-contrastive pass over the KB's questions
(questions of one article pulled together, other articles pushed apart) and the known out-of-scope examples
(pushed away from every article, never pulled together: they have nothing in common) separates them. Measured on
CLINC150 10-shot (docs/benchmarks.md): more right answers and more out-of-scope messages escalated at the same
time. It costs tens of seconds on one core, so the live bot answers with the frozen encoder at once after a
publish and swaps in the tuned one when it is ready (actions/kb_service.py).
"""

from __future__ import annotations

import copy
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from knowledge.articles import KnowledgeBase
from knowledge.embeddings import SentenceEmbedder, load_sentence_model

if TYPE_CHECKING:
    import torch

OOS_LABEL = -1  # label of known out-of-scope examples: negatives for everyone, positives for no one


@dataclass(frozen=True)
class FineTuneSettings:
    """The recipe; chosen on CLINC150 10-shot validation data (docs/benchmarks.md), not per KB."""

    epochs: float = 2.0  # passes over the examples
    max_steps: int = 120  # cap for large KBs (15,000 questions would take minutes)
    classes_per_batch: int = 32
    per_class: int = 2  # two questions of each sampled article: each is the other's positive
    temperature: float = 0.05
    learning_rate: float = 3e-5
    seed: int = 0


def kb_examples(kb: KnowledgeBase, oos_examples: Sequence[str] = ()) -> tuple[list[str], list[int]]:
    """Training texts and labels: one label per article with questions, OOS_LABEL for out-of-scope examples."""
    texts: list[str] = []
    labels: list[int] = []
    for i, article in enumerate(a for a in kb.articles if a.questions):
        texts.extend(article.questions)
        labels.extend([i] * len(article.questions))
    oos = [t for t in oos_examples if t.strip()]
    return texts + oos, labels + [OOS_LABEL] * len(oos)


def plan_steps(n_examples: int, settings: FineTuneSettings) -> int:
    batch = settings.classes_per_batch * settings.per_class
    return max(1, min(settings.max_steps, round(settings.epochs * n_examples / batch)))


def batches(labels: Sequence[int], settings: FineTuneSettings, steps: int) -> Iterator[list[int]]:
    """Indices of each batch: ``classes_per_batch`` labels drawn at random, ``per_class`` examples of each.

    Out-of-scope examples form one more group to draw from (they only ever serve as negatives). Deterministic
    for a given seed.
    """
    rng = random.Random(settings.seed)
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    keys = sorted(groups)
    for _ in range(steps):
        drawn = rng.sample(keys, min(settings.classes_per_batch, len(keys)))
        yield [i for key in drawn for i in rng.sample(groups[key], min(settings.per_class, len(groups[key])))]


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) on L2-normalised rows ``z``.

    Each row's positives are the other rows with its label; rows labelled OOS_LABEL have no positives (they
    are not one topic) but count as negatives in every other row's denominator. Rows without a positive add
    nothing.
    """
    import torch

    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    positives = (labels[:, None] == labels[None, :]) & ~eye & (labels[:, None] != OOS_LABEL)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    has = positives.any(dim=1)
    if not bool(has.any()):
        return z.sum() * 0.0
    per_row = -(log_prob.masked_fill(~positives, 0.0)).sum(dim=1)[has] / positives.sum(dim=1)[has]
    return per_row.mean()


class FineTuneStopped(Exception):
    """``should_stop`` said so between two steps (the KB changed again, or the server is stopping)."""


class TunedEmbedder(SentenceEmbedder):
    """A SentenceEmbedder over a fine-tuned copy of the model (its own in-memory cache, never the disk one)."""

    tuned = True

    def __init__(self, model: object, name: str, train_seconds: float, steps: int) -> None:
        super().__init__(model_path=name, cache_dir=None)
        self._model = model
        self.train_seconds = train_seconds
        self.steps = steps

    def _model_encode(self, texts: list[str]) -> np.ndarray:
        from knowledge.embeddings import encode_with_model

        vectors = encode_with_model(self._model, texts, self.batch_size)
        self.encoded_count += len(texts)
        return vectors


_TRAIN_LOCK = threading.Lock()  # one fine-tune at a time per process: each is a core's worth of work


def fine_tune(
    kb: KnowledgeBase,
    oos_examples: Sequence[str] = (),
    base: SentenceEmbedder | None = None,
    settings: FineTuneSettings | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TunedEmbedder:
    """Fine-tune a copy of the base model on the KB's questions; the base model stays as it is.

    ``should_stop`` is asked before each step; when it answers True, ``FineTuneStopped`` is raised.
    """
    import torch

    settings = settings or FineTuneSettings()
    base = base or SentenceEmbedder()
    texts, labels = kb_examples(kb, oos_examples)
    if not texts:
        raise ValueError("the KB has no article with example questions")
    steps = plan_steps(len(texts), settings)
    digest = hashlib.sha256("\0".join(f"{label}:{t}" for t, label in zip(texts, labels, strict=True)).encode())
    with _TRAIN_LOCK:
        started = time.perf_counter()
        model = copy.deepcopy(load_sentence_model(base.model_path))
        torch.manual_seed(settings.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)  # type: ignore[attr-defined]
        y = torch.tensor(labels)
        model.train()  # type: ignore[attr-defined]
        prepare = getattr(model, "preprocess", None) or model.tokenize  # type: ignore[attr-defined]
        for batch in batches(labels, settings, steps):
            if should_stop():
                raise FineTuneStopped
            out = model(prepare([texts[i] for i in batch]))["sentence_embedding"]  # type: ignore[operator]
            loss = supcon_loss(torch.nn.functional.normalize(out, dim=1), y[batch], settings.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()  # type: ignore[attr-defined]
        seconds = time.perf_counter() - started
    return TunedEmbedder(model, f"{base.model_path}#tuned-{digest.hexdigest()[:12]}", seconds, steps)
