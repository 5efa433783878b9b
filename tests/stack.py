"""Start real Warmline processes for the end-to-end tests and benchmarks, on free ports in a scratch directory."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import Settings
from warmline.migrate import upgrade
from warmline.processes import Supervisor, services
from warmline.training import ensure_model


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make a child process see ``settings``."""
    env = {
        "WARMLINE_STATE_DIR": str(settings.state_dir),
        "WARMLINE_KB_PATH": str(settings.kb_path),
        "WARMLINE_RELAY_PORT": str(settings.relay_port),
        "WARMLINE_RASA_PORT": str(settings.rasa_port),
        "WARMLINE_ACTIONS_PORT": str(settings.actions_port),
        "WARMLINE_METRICS_TOKEN": settings.metrics_token or "",
    }
    for key, value in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url)):
        env[key] = value or ""
    flags = {
        "WARMLINE_KB_FINE_TUNE": str(settings.kb_fine_tune).lower(),
        "WARMLINE_COPILOT": str(settings.copilot).lower(),
    }
    return {**env, **NO_RATE_LIMITS, **flags}


# The shared stack of the functional tests and the benchmarks sends far faster, from one address, than any real
# customer: its abuse limits are out of the way. tests/test_rate_limits.py runs a relay with the real defaults.
NO_RATE_LIMITS = {
    f"WARMLINE_{name.upper()}": "1000000 per second" for name in Settings.model_fields if name.startswith("rate_")
}
DEFAULT_RATE_LIMITS = {
    f"WARMLINE_{name.upper()}": str(field.default)
    for name, field in Settings.model_fields.items()
    if name.startswith("rate_")
}


@dataclass
class Stack:
    settings: Settings
    supervisor: Supervisor
    model: Path

    @property
    def relay_url(self) -> str:
        return self.settings.relay_url

    def add_relay(
        self,
        database_url: str | None = None,
        redis_url: str | None = None,
        rasa_port: int | None = None,
        copilot: bool = True,
    ) -> str:
        """Start one more relay process (on its own port); returns its URL. ``rasa_port`` can point it elsewhere."""
        update: dict[str, object] = {
            "relay_port": free_port(), "database_url": database_url, "redis_url": redis_url, "copilot": copilot,
        }  # fmt: skip
        if rasa_port is not None:
            update["rasa_port"] = rasa_port
        relay_settings = self.settings.model_copy(update=update)
        if database_url:
            upgrade(relay_settings.db_url)
        relay = next(s for s in services(relay_settings, self.model, settings_env(relay_settings)) if s.name == "relay")
        self.supervisor.start(relay)
        return relay_settings.relay_url


def scratch_settings(state_dir: Path, **given: Any) -> Settings:
    """Settings for processes of a test's own: SQLite in ``state_dir`` (migrated), free ports, no Redis, a /metrics
    token (for the tests and benchmarks that read each process's metrics)."""
    settings = Settings(
        state_dir=state_dir,
        relay_port=free_port(),
        rasa_port=free_port(),
        actions_port=free_port(),
        DATABASE_URL=None,
        REDIS_URL=None,
        metrics_token=secrets.token_urlsafe(16),
        **given,
    )
    upgrade(settings.db_url)
    return settings


@contextmanager
def running_stack(state_dir: Path, kb_path: Path | None = None, fine_tune: bool = False) -> Iterator[Stack]:
    """Rasa, the action server and one relay (SQLite in ``state_dir``), stopped on exit. The action server's
    background fine-tune (knowledge/finetune.py) costs a stack tens of CPU-seconds after every publish: off unless
    asked for (its own tests run the service in-process; bench/kb_publish.py measures it)."""
    model, _ = ensure_model(Settings())  # the model is cached in the project's state dir across runs
    settings = scratch_settings(state_dir, kb_path=kb_path or Settings().kb_path, kb_fine_tune=fine_tune)
    supervisor = Supervisor(settings)
    try:
        for service in services(settings, model, settings_env(settings)):
            supervisor.start(service)
        yield Stack(settings, supervisor, model)
    finally:
        supervisor.stop_all()


@contextmanager
def running_action_server(state_dir: Path) -> Iterator[tuple[Settings, int]]:
    """The action server alone (``warmline actions``: the demo KB's live retriever, frozen encoder, SQLite in
    ``state_dir``), stopped on exit: its settings and its process id."""
    settings = scratch_settings(state_dir, kb_fine_tune=False)
    supervisor = Supervisor(settings)
    try:
        (action_server,) = [
            s for s in services(settings, Path("unused"), settings_env(settings)) if s.name == "action server"
        ]
        supervisor.start(action_server)
        proc = supervisor.runs[-1].proc
        assert proc is not None
        yield settings, proc.pid
    finally:
        supervisor.stop_all()
