"""Deflection benchmark on CLINC150: Warmline's retriever against two references.

Why: the bot must answer the questions its KB covers and hand everything else to a person. CLINC150 (150 in-scope
intents plus out-of-scope queries) measures exactly that trade-off. Usage (from the repo root):

    python bench/clinc150.py [--data PATH] [--json FILE] [--skip-rasa] [--rasa-cache DIR]

The dataset is read where it lies (``--data``, else ``$WARMLINE_DATASETS/clinc150/data_full.json``, else
``../shared/datasets/clinc150/data_full.json`` relative to the repo root); it is never copied into the repo.
The Rasa reference (default DIET pipeline) takes about an hour to train here, so its model is cached under
``--rasa-cache`` keyed by a hash of the training data and config; ``--rasa-train-only`` just fills that cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from knowledge.articles import Article, KnowledgeBase  # noqa: E402

RASA_PYTHON = REPO / ".venv-rasa" / "bin" / "python"
DEFAULT_RASA_CACHE = REPO / "bench" / "out" / "rasa-clinc150"
ESCALATE = "__escalate__"

# --------------------------------------------------------------------------------------------------------------
# Data


def dataset_path(cli_value: str | None) -> Path:
    """Where CLINC150 lies: --data, then $WARMLINE_DATASETS/clinc150, then the shared datasets next to the repo."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get("WARMLINE_DATASETS")
    if env:
        return Path(env) / "clinc150" / "data_full.json"
    return (REPO / ".." / "shared" / "datasets" / "clinc150" / "data_full.json").resolve()


@dataclass(frozen=True)
class Splits:
    train: list[tuple[str, str]]
    oos_train: list[str]
    val: list[tuple[str, str]]
    oos_val: list[str]
    test: list[tuple[str, str]]
    oos_test: list[str]


def load_splits(path: Path) -> Splits:
    raw = json.loads(path.read_text(encoding="utf-8"))

    def pairs(name: str) -> list[tuple[str, str]]:
        return [(text, label) for text, label in raw[name]]

    def texts(name: str) -> list[str]:
        return [text for text, _ in raw[name]]

    return Splits(pairs("train"), texts("oos_train"), pairs("val"), texts("oos_val"), pairs("test"), texts("oos_test"))


def article_id(label: str) -> str:
    """CLINC150 labels are snake_case; KB ids are slugs."""
    return label.replace("_", "-")


def kb_from_train(train: Sequence[tuple[str, str]]) -> KnowledgeBase:
    """150 intents -> 150 articles; the answer is a placeholder, the questions are the training examples."""
    by_label: dict[str, list[str]] = {}
    for text, label in train:
        by_label.setdefault(label, []).append(text)
    articles = tuple(
        Article(
            id=article_id(label),
            title=label.replace("_", " "),
            answer=f"(placeholder answer for {label})",
            questions=tuple(questions),
        )
        for label, questions in sorted(by_label.items())
    )
    return KnowledgeBase(articles)


# --------------------------------------------------------------------------------------------------------------
# Metrics


@dataclass
class Result:
    system: str
    in_scope_accuracy: float
    oos_recall: float
    joint_accuracy: float
    choices_rate: float
    train_seconds: float
    p50_ms: float
    p99_ms: float
    threshold: str
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def score_predictions(
    in_scope_pred: Sequence[str], in_scope_gold: Sequence[str], oos_pred: Sequence[str]
) -> tuple[float, float, float]:
    """In-scope accuracy (exact article), oos recall (escalated), joint accuracy over all queries.

    A prediction is an article id, ESCALATE, or anything else (e.g. a "choices" marker), which counts as wrong
    for in-scope queries and as not escalated for oos queries.
    """
    correct = sum(p == g for p, g in zip(in_scope_pred, in_scope_gold, strict=True))
    escalated = sum(p == ESCALATE for p in oos_pred)
    n_in, n_oos = len(in_scope_gold), len(oos_pred)
    return correct / n_in, escalated / n_oos, (correct + escalated) / (n_in + n_oos)


def oos_weight(share: float | None, n_in: int, n_oos: int) -> float:
    """Weight of one out-of-scope validation query so that they make up ``share`` of the tuning objective."""
    if share is None or n_oos == 0:
        return 1.0
    return share / (1.0 - share) * n_in / n_oos


def best_threshold(
    top_label: Sequence[str],
    top_conf: Sequence[float],
    gold: Sequence[str],
    oos_conf: Sequence[float],
    oos_share: float | None,
) -> float:
    """One max-confidence threshold maximising (weighted) joint accuracy on validation data; ties: the highest.

    The same objective as ``knowledge.retrieval.tune_thresholds`` uses for its answer threshold, so references
    and Warmline are tuned alike.
    """
    in_ok = np.array([p == g for p, g in zip(top_label, gold, strict=True)])
    in_conf = np.asarray(top_conf, dtype=float)
    oos = np.asarray(oos_conf, dtype=float)
    w = oos_weight(oos_share, len(in_conf), len(oos))
    best_t, best_gain = 0.0, -1.0
    for t in np.unique(np.concatenate([in_conf, oos, [0.0]])):
        gain = float(np.sum(in_ok & (in_conf >= t)) + w * np.sum(oos < t))
        if gain >= best_gain:
            best_t, best_gain = float(t), gain
    return best_t


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if len(seconds) else float("nan")


# --------------------------------------------------------------------------------------------------------------
# Reference (b): Rasa's default NLU pipeline (DIET), trained in .venv-rasa and cached.

RASA_CONFIG = """\
recipe: default.v1
assistant_id: warmline-clinc150-bench
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
    constrain_similarities: true
  - name: FallbackClassifier
    threshold: 0.3
policies: []
"""

RASA_FALLBACK_THRESHOLD = 0.3


def rasa_nlu_yaml(kb: KnowledgeBase) -> str:
    """Rasa NLU training data, one intent per article (same intent names the bot uses)."""
    lines = ['version: "3.1"', "nlu:"]
    for article in kb.articles:
        lines.append(f"- intent: {article.intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {q}" for q in article.questions)
    return "\n".join(lines) + "\n"


def rasa_cache_key(nlu_yaml: str, config: str) -> str:
    return hashlib.sha256((nlu_yaml + "\0" + config).encode("utf-8")).hexdigest()[:16]


def rasa_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        # CPU etiquette on a shared 2-core machine: one thread each (the caller may also taskset/nice us).
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        TF_NUM_INTRAOP_THREADS=env.get("TF_NUM_INTRAOP_THREADS", "1"),
        TF_NUM_INTEROP_THREADS=env.get("TF_NUM_INTEROP_THREADS", "1"),
    )
    return env


def train_rasa(kb: KnowledgeBase, cache_root: Path, log: Callable[[str], None]) -> Path:
    """Train (or reuse) the DIET reference model; returns its cache dir holding model.tar.gz and meta.json."""
    nlu = rasa_nlu_yaml(kb)
    key = rasa_cache_key(nlu, RASA_CONFIG)
    target = cache_root / key
    if (target / "model.tar.gz").exists() and (target / "meta.json").exists():
        log(f"rasa: using cached model {target}")
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="warmline-rasa-clinc150-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        (work / "data" / "nlu.yml").write_text(nlu, encoding="utf-8")
        (work / "config.yml").write_text(RASA_CONFIG, encoding="utf-8")
        cmd = [
            str(RASA_PYTHON), "-m", "rasa", "train", "nlu",
            "--nlu", "data/nlu.yml", "--config", "config.yml",
            "--out", "models", "--fixed-model-name", "clinc150",
        ]  # fmt: skip
        log(f"rasa: training in {work} (about an hour here) -> {target}")
        started = time.perf_counter()
        with open(target / "train.log", "w", encoding="utf-8") as out:
            proc = subprocess.run(cmd, cwd=work, env=rasa_env(), stdout=out, stderr=subprocess.STDOUT, check=False)
        seconds = time.perf_counter() - started
        model = work / "models" / "clinc150.tar.gz"
        if proc.returncode != 0 or not model.exists():
            raise RuntimeError(f"rasa train failed (exit {proc.returncode}); see {target / 'train.log'}")
        shutil.copy2(model, target / "model.tar.gz")
    meta = {
        "train_seconds": seconds,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "niceness": os.nice(0),
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    log(f"rasa: trained in {seconds:.0f} s")
    return target


# Runs inside .venv-rasa: loads the model once, parses every text, writes intent/confidence/ranking/latency.
RASA_PARSE_HELPER = r'''
import asyncio, json, sys, time, logging
logging.disable(logging.WARNING)
from rasa.core.agent import Agent

async def main(model, src, dst):
    texts = json.load(open(src, encoding="utf-8"))
    agent = Agent.load(model)
    for t in texts[:20]:  # warm-up
        await agent.parse_message(t)
    out = []
    for t in texts:
        start = time.perf_counter()
        parsed = await agent.parse_message(t)
        seconds = time.perf_counter() - start
        ranking = [r for r in parsed.get("intent_ranking", []) if r.get("name") != "nlu_fallback"]
        top = ranking[0] if ranking else {"name": None, "confidence": 0.0}
        out.append({
            "intent": parsed["intent"]["name"], "confidence": parsed["intent"]["confidence"],
            "top_intent": top["name"], "top_confidence": top["confidence"], "seconds": seconds,
        })
    json.dump(out, open(dst, "w", encoding="utf-8"))

asyncio.run(main(*sys.argv[1:4]))
'''


def parse_with_rasa(model_dir: Path, texts: Sequence[str]) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="warmline-rasa-parse-") as tmp:
        work = Path(tmp)
        (work / "helper.py").write_text(RASA_PARSE_HELPER, encoding="utf-8")
        (work / "texts.json").write_text(json.dumps(list(texts)), encoding="utf-8")
        cmd = [str(RASA_PYTHON), "helper.py", str(model_dir / "model.tar.gz"), "texts.json", "parsed.json"]
        proc = subprocess.run(cmd, cwd=work, env=rasa_env(), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"rasa parse helper failed:\n{proc.stderr[-4000:]}")
        return json.loads((work / "parsed.json").read_text(encoding="utf-8"))


