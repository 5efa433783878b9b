"""Train the Rasa model from the project files and the KB, only when something it depends on changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from knowledge.articles import load_kb
from knowledge.export import domain_data, nlu_data, rules_data
from warmline.settings import ROOT, Settings

# Everything that changes what Rasa learns. The KB file is hashed too: editing an article means retraining.
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


def fingerprint(settings: Settings) -> str:
    digest = hashlib.sha256()
    files: list[Path] = []
    for name in PROJECT_INPUTS:
        path = ROOT / name
        files.extend(sorted(path.rglob("*.yml")) if path.is_dir() else [path])
    files.append(settings.kb_path)
    for path in files:
        digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_path(settings: Settings) -> Path:
    return settings.models_dir / f"warmline-{fingerprint(settings)}.tar.gz"


def write_training_files(settings: Settings, build: Path) -> None:
    """Lay out the generated domain and data next to copies of the hand-written ones, for ``rasa train``."""
    kb = load_kb(settings.kb_path)
    shutil.rmtree(build, ignore_errors=True)
    (build / "domain").mkdir(parents=True)
    (build / "data").mkdir(parents=True)
    shutil.copy(ROOT / "bot" / "domain.yml", build / "domain" / "domain.yml")
    for target, content in (
        (build / "domain" / "kb.yml", domain_data(kb)),
        (build / "data" / "kb_nlu.yml", nlu_data(kb)),
        (build / "data" / "kb_rules.yml", rules_data(kb)),
    ):
        target.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True), encoding="utf-8")


def ensure_model(settings: Settings, force: bool = False, log: Path | None = None) -> tuple[Path, bool]:
    """Return (model, trained_now). Trains only when no model matches the current inputs (or ``force``)."""
    target = model_path(settings)
    if target.exists() and not force:
        return target, False
    build = settings.state_dir / "build"
    write_training_files(settings, build)
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


def _prune(models_dir: Path, keep: Path) -> None:
    models = sorted(models_dir.glob("warmline-*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [m for m in models if m != keep][MODELS_KEPT - 1 :]:
        old.unlink(missing_ok=True)
