"""Train the Rasa model from the project files and the KB, only when something it depends on changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from common.settings import ROOT, Settings
from knowledge.articles import KnowledgeBase, load_kb
from knowledge.export import domain_data, nlu_data, rules_data

# Everything that changes what Rasa learns. The KB's generated training data is hashed too (``fingerprint``).
PROJECT_INPUTS = ("config.yml", "bot/domain.yml", "data", "knowledge/export.py", "requirements/rasa.lock")
MODELS_KEPT = 3


class TrainingError(RuntimeError):
    pass


def rasa_env() -> dict[str, str]:
    return {
        **os.environ,
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONWARNINGS": "ignore",
    }


def training_kb(settings: Settings) -> KnowledgeBase:
    """The published KB from the database (editors' articles included); the seed YAML while the database has none."""
    from knowledge.db_read import published_kb_or_none

    kb = published_kb_or_none(settings.db_url)
    return kb if kb is not None and kb.articles else load_kb(settings.kb_path)


def kb_training_files(kb: KnowledgeBase) -> dict[str, str]:
    """The generated domain and data, by path under the build directory."""
    return {
        "domain/kb.yml": _dump(domain_data(kb)),
        "data/kb_nlu.yml": _dump(nlu_data(kb)),
        "data/kb_rules.yml": _dump(rules_data(kb)),
    }


def _dump(content: object) -> str:
    return yaml.safe_dump(content, sort_keys=False, allow_unicode=True)


def fingerprint(settings: Settings, kb: KnowledgeBase | None = None) -> str:
    digest = hashlib.sha256()
    files: list[Path] = []
    for name in PROJECT_INPUTS:
        path = ROOT / name
        files.extend(sorted(path.rglob("*.yml")) if path.is_dir() else [path])
    for path in files:
        digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).encode())
        digest.update(path.read_bytes())
    # What Rasa learns from the KB (intents and examples), not where it came from: the seed YAML and the same
    # articles in the database give the same model, and an answer-only edit needs no retraining.
    for name, text in kb_training_files(kb if kb is not None else training_kb(settings)).items():
        digest.update(name.encode())
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def model_path(settings: Settings, kb: KnowledgeBase | None = None) -> Path:
    return settings.models_dir / f"warmline-{fingerprint(settings, kb)}.tar.gz"


def write_training_files(settings: Settings, build: Path, kb: KnowledgeBase | None = None) -> None:
    """Lay out the generated domain and data next to copies of the hand-written ones, for ``rasa train``."""
    shutil.rmtree(build, ignore_errors=True)
    (build / "domain").mkdir(parents=True)
    (build / "data").mkdir(parents=True)
    shutil.copy(ROOT / "bot" / "domain.yml", build / "domain" / "domain.yml")
    for name, text in kb_training_files(kb if kb is not None else training_kb(settings)).items():
        (build / name).write_text(text, encoding="utf-8")


def ensure_model(settings: Settings, force: bool = False, log: Path | None = None) -> tuple[Path, bool]:
    """Return (model, trained_now). Trains only when no model matches the current inputs (or ``force``)."""
    kb = training_kb(settings)
    target = model_path(settings, kb)
    if target.exists() and not force:
        return target, False
    build = settings.state_dir / "build"
    write_training_files(settings, build, kb)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(settings.rasa_python), "-m", "rasa", "train",
        "--config", str(ROOT / "config.yml"),
        "--domain", str(build / "domain"),
        "--data", str(ROOT / "data"), str(build / "data"),
        "--out", str(settings.models_dir),
        "--fixed-model-name", target.name.removesuffix(".tar.gz"),
    ]  # fmt: skip
    log = log or settings.logs_dir / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run(command, cwd=ROOT, env=rasa_env(), stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not target.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise TrainingError(f"rasa train failed (exit {result.returncode}); last lines of {log}:\n{tail}")
    _prune(settings.models_dir, keep=target)
    return target, True


def load_into_rasa(settings: Settings, model: Path, timeout_s: float = 300.0) -> None:
    """Swap the running Rasa's model (``PUT /model``; Rasa runs with ``--enable-api``), without a restart.

    Conversations carry on: trackers live apart from the model. Blocking until Rasa has loaded it.
    """
    request = urllib.request.Request(
        f"{settings.rasa_url}/model",
        data=json.dumps({"model_file": str(model)}).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        raise TrainingError(f"Rasa refused the model {model} (HTTP {exc.code}): {exc.read()[:300]!r}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise TrainingError(f"Rasa is not reachable at {settings.rasa_url} to load {model}: {exc}") from exc
    if status not in (200, 204):
        raise TrainingError(f"Rasa answered HTTP {status} when asked to load {model}")


def _prune(models_dir: Path, keep: Path) -> None:
    models = sorted(models_dir.glob("warmline-*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [m for m in models if m != keep][MODELS_KEPT - 1 :]:
        old.unlink(missing_ok=True)
