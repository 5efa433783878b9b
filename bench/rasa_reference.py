"""Reference (b) of the deflection benchmark: Rasa's default NLU pipeline (DIET), trained and served by Rasa itself.

Why a module of its own: it is the only part of the benchmark that runs in Rasa's environment. It reuses the
project's Rasa set-up (``warmline.training.rasa_env``, ``Settings.rasa_python``) and the project's own NLU export
of a KB (``warmline.training.kb_training_files``, i.e. ``knowledge.export``), so DIET learns exactly what the bot
would be trained on. Training is ``rasa train nlu`` in ``.venv-rasa``; parsing is ``rasa run --enable-api`` with
the model and one ``POST /model/parse`` per message, the way the bot reaches Rasa. A DIET training takes about an
hour on two cores, so models are cached under ``<cache>/<hash of NLU data + config>/`` (``model.tar.gz`` and
``meta.json``) and the benchmark only uses a cached one unless asked to train.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from common.settings import ROOT, Settings
from knowledge.articles import KnowledgeBase
from warmline.training import kb_training_files, rasa_env

DEFAULT_CACHE = ROOT / "bench" / "out" / "rasa-clinc150"
FALLBACK_THRESHOLD = 0.3
CONFIG = f"""\
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
    threshold: {FALLBACK_THRESHOLD}
policies: []
"""


class Meta(BaseModel):
    """meta.json beside a cached model: how it was trained (its training time is the reference's build time)."""

    train_seconds: float
    trained_at: str
    cpu_affinity: list[int]
    niceness: int


class Parsed(BaseModel):
    """Rasa's reading of one message: its own decision (``intent`` may be nlu_fallback) and its best real intent."""

    intent: str | None
    confidence: float
    top_intent: str | None
    top_confidence: float
    seconds: float


def nlu_yaml(kb: KnowledgeBase) -> str:
    return kb_training_files(kb)["data/kb_nlu.yml"]


def cache_dir(kb: KnowledgeBase, cache_root: Path, config: str = CONFIG) -> Path:
    key = hashlib.sha256((nlu_yaml(kb) + "\0" + config).encode("utf-8")).hexdigest()[:16]
    return cache_root / key


def cached_model(kb: KnowledgeBase, cache_root: Path, config: str = CONFIG) -> Path | None:
    """The cache directory of a trained model for this KB and config, or None if none was trained."""
    target = cache_dir(kb, cache_root, config)
    return target if (target / "model.tar.gz").exists() and (target / "meta.json").exists() else None


def read_meta(model_dir: Path) -> Meta:
    return Meta.model_validate_json((model_dir / "meta.json").read_text(encoding="utf-8"))


def _env() -> dict[str, str]:
    env = rasa_env()
    # CPU etiquette on a shared 2-core machine: one thread each unless the caller asks for more.
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.setdefault(name, "1")
    return env


def train(kb: KnowledgeBase, cache_root: Path, log: Callable[[str], None], config: str = CONFIG) -> Path:
    """Train (or reuse) the DIET model with ``rasa train nlu``; returns its cache dir."""
    found = cached_model(kb, cache_root, config)
    if found is not None:
        log(f"rasa: using cached model {found}")
        return found
    target = cache_dir(kb, cache_root, config)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="warmline-rasa-bench-") as tmp:
        work = Path(tmp)
        (work / "nlu.yml").write_text(nlu_yaml(kb), encoding="utf-8")
        (work / "config.yml").write_text(config, encoding="utf-8")
        command = [
            str(Settings().rasa_python), "-m", "rasa", "train", "nlu",
            "--nlu", "nlu.yml", "--config", "config.yml", "--out", "models", "--fixed-model-name", "bench",
        ]  # fmt: skip
        log(f"rasa: training in {work} -> {target} (DIET on CLINC150: about an hour on two cores)")
        started = time.perf_counter()
        with (target / "train.log").open("w", encoding="utf-8") as out:
            proc = subprocess.run(command, cwd=work, env=_env(), stdout=out, stderr=subprocess.STDOUT, check=False)
        seconds = time.perf_counter() - started
        model = work / "models" / "bench.tar.gz"
        if proc.returncode != 0 or not model.exists():
            raise RuntimeError(f"rasa train failed (exit {proc.returncode}); see {target / 'train.log'}")
        shutil.copy2(model, target / "model.tar.gz")
    meta = Meta(
        train_seconds=seconds,
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        cpu_affinity=sorted(os.sched_getaffinity(0)),
        niceness=os.nice(0),
    )
    (target / "meta.json").write_text(meta.model_dump_json(indent=2), encoding="utf-8")
    log(f"rasa: trained in {seconds:.0f} s")
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, str], timeout: float) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


def parse(model_dir: Path, texts: Sequence[str], log: Callable[[str], None], warm_up: int = 20) -> list[Parsed]:
    """Serve the model with ``rasa run --enable-api`` and parse every text one at a time (``POST /model/parse``)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Settings().rasa_python), "-m", "rasa", "run", "--model", str(model_dir / "model.tar.gz"),
        "--interface", "127.0.0.1", "--port", str(port), "--enable-api",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="warmline-rasa-parse-") as tmp:
        log_path = Path(tmp) / "rasa.log"
        with log_path.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(command, cwd=tmp, env=_env(), stdout=out, stderr=subprocess.STDOUT)
            try:
                _wait_ready(url, proc, log_path)
                log(f"rasa: serving {model_dir.name} on port {port}; parsing {len(texts)} messages")
                for text in texts[:warm_up]:
                    _post(f"{url}/model/parse", {"text": text}, 30.0)
                return [_parse_one(url, text) for text in texts]
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"rasa run exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/status", timeout=2.0) as reply:
                status = json.loads(reply.read())
            if status.get("model_file"):
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(1.0)
    raise RuntimeError(f"rasa run was not ready after {timeout_s:.0f} s; see {log_path}")


def _parse_one(url: str, text: str) -> Parsed:
    started = time.perf_counter()
    parsed = _post(f"{url}/model/parse", {"text": text}, 30.0)
    seconds = time.perf_counter() - started
    intent = parsed.get("intent") or {}
    assert isinstance(intent, dict)
    ranking = [r for r in parsed.get("intent_ranking") or [] if isinstance(r, dict) and r.get("name") != "nlu_fallback"]
    top = ranking[0] if ranking else {"name": None, "confidence": 0.0}
    return Parsed(
        intent=intent.get("name"),
        confidence=float(intent.get("confidence") or 0.0),
        top_intent=top.get("name"),
        top_confidence=float(top.get("confidence") or 0.0),
        seconds=seconds,
    )
