"""Start Warmline's processes (Rasa, the action server, the relay), wait until each answers, stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.settings import ROOT, Settings
from warmline.training import rasa_env


class StartError(RuntimeError):
    """A service could not start; the message is for the operator and says what to do."""


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    port: int
    health_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def services(settings: Settings, model: Path, extra_env: Mapping[str, str] | None = None) -> list[Service]:
    """The three processes of a single-machine Warmline, in start order."""
    app_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    return [
        Service(
            name="action server",
            argv=[sys.executable, "-m", "warmline.cli", "actions"],
            port=settings.actions_port,
            health_url=f"http://{settings.host}:{settings.actions_port}/health",
            env=app_env,
        ),
        Service(
            name="rasa",
            argv=[
                str(settings.rasa_python),
                "-m",
                "rasa",
                "run",
                "--model",
                str(model),
                "--interface",
                settings.host,
                "--port",
                str(settings.rasa_port),
                "--credentials",
                str(ROOT / "credentials.yml"),
                "--endpoints",
                str(ROOT / "endpoints.yml"),
                "--enable-api",
            ],  # fmt: skip
            port=settings.rasa_port,
            health_url=f"{settings.rasa_url}/status",
            env={**rasa_env(), **(extra_env or {}), "WARMLINE_ACTIONS_URL": settings.actions_url},
            ready_timeout_s=240.0,
        ),
        Service(
            name="relay",
            argv=[sys.executable, "-m", "warmline.cli", "relay"],
            port=settings.relay_port,
            health_url=f"{settings.relay_url}/health",
            env=app_env,
        ),
    ]


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.running: list[tuple[Service, subprocess.Popen[bytes], Path]] = []

    def check_ports(self, wanted: list[Service]) -> None:
        busy = [s for s in wanted if not port_free(self.settings.host, s.port)]
        if busy:
            names = ", ".join(f"{s.name} on port {s.port}" for s in busy)
            raise StartError(
                f"Port already in use: {names}. Stop whatever holds it, or choose other ports with "
                "WARMLINE_RELAY_PORT / WARMLINE_RASA_PORT / WARMLINE_ACTIONS_PORT."
            )

    def start(self, service: Service) -> None:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.settings.logs_dir / f"{service.name.replace(' ', '-')}-{service.port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                service.argv, cwd=ROOT, env=dict(service.env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            )  # fmt: skip
        self.running.append((service, proc, log))
        self._wait_ready(service, proc, log)

    def _wait_ready(self, service: Service, proc: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + service.ready_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StartError(f"{service.name} exited with code {proc.returncode} while starting.\n{_tail(log)}")
            try:
                with urllib.request.urlopen(service.health_url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise StartError(
            f"{service.name} did not answer {service.health_url} within {service.ready_timeout_s:.0f} s.\n{_tail(log)}"
        )

    def first_exited(self) -> tuple[Service, int, Path] | None:
        for service, proc, log in self.running:
            if proc.poll() is not None:
                return service, proc.returncode, log
        return None

    def stop_all(self, timeout_s: float = 15.0) -> None:
        for _service, proc, _log in reversed(self.running):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for _service, proc, _log in reversed(self.running):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.running.clear()


def _tail(log: Path, lines: int = 20) -> str:
    text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    return f"Last lines of {log}:\n" + "\n".join(text)
