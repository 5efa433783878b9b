"""Start Warmline's processes (Rasa, the action server, the relay), wait until each answers, stop them cleanly."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.settings import ROOT, Settings
from warmline.training import rasa_env

log = logging.getLogger("warmline.supervisor")


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


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delays between restarts: 1, 2, 4 ... ``cap_s`` seconds. A service that stayed up for
    ``stable_s`` counts as healthy again, so its next crash restarts after ``first_s`` again."""

    first_s: float = 1.0
    cap_s: float = 30.0
    stable_s: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap_s, self.first_s * 2 ** max(0, failures - 1)))


@dataclass
class Run:
    """One supervised service: its current process (None while it waits for a restart) and its crash record."""

    service: Service
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = True
    failures: int = 0  # crashes in a row, each within ``Backoff.stable_s`` of its start
    restarts: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts the services, and while ``supervise`` runs, restarts any that exits, after a capped exponential
    backoff. Services are independent processes: one that died never takes another down (the relay tells customers
    the bot is away while Rasa or the action server is restarting)."""

    def __init__(self, settings: Settings, backoff: Backoff | None = None) -> None:
        self.settings = settings
        self.backoff = backoff or Backoff()
        self.runs: list[Run] = []

    @property
    def running(self) -> list[tuple[Service, subprocess.Popen[bytes], Path]]:
        return [(r.service, r.proc, r.log) for r in self.runs if r.proc is not None]

    def check_ports(self, wanted: list[Service]) -> None:
        busy = [s for s in wanted if not port_free(self.settings.host, s.port)]
        if busy:
            names = ", ".join(f"{s.name} on port {s.port}" for s in busy)
            raise StartError(
                f"Port already in use: {names}. Stop whatever holds it, or choose other ports with "
                "WARMLINE_RELAY_PORT / WARMLINE_RASA_PORT / WARMLINE_ACTIONS_PORT."
            )

    def start(self, service: Service) -> None:
        """Start a service and wait until it answers; a first start that fails is the operator's to fix."""
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        run = Run(service, self.settings.logs_dir / f"{service.name.replace(' ', '-')}-{service.port}.log")
        self.runs.append(run)
        self._spawn(run, append=False)
        self._wait_ready(service, run.proc, run.log)  # type: ignore[arg-type]
        run.ready = True

    def _spawn(self, run: Run, append: bool) -> None:
        with run.log.open("ab" if append else "wb") as out:
            if append:  # the crashed process's last lines stay above this one, for the operator
                out.write(f"\n--- restarted by warmline run (restart {run.restarts}) ---\n".encode())
                out.flush()
            run.proc = subprocess.Popen(
                run.service.argv, cwd=ROOT, env=dict(run.service.env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            )  # fmt: skip
        run.started_at = time.monotonic()
        run.ready = False
        run.restart_at = None

    def pid_of(self, name: str) -> int | None:
        """The current process id of the named service (None while it waits for a restart)."""
        run = next(r for r in self.runs if r.service.name == name)
        return run.proc.pid if run.proc is not None and run.proc.poll() is None else None

    def supervise(self, stop: threading.Event | None = None, poll_s: float = 0.5) -> None:
        """Restart services that exit, until ``stop`` is set (or a signal raises KeyboardInterrupt)."""
        while stop is None or not stop.is_set():
            self.check()
            if stop is None:
                time.sleep(poll_s)
            else:
                stop.wait(poll_s)

    def check(self) -> None:
        """One round: notice exits, schedule restarts with backoff, start those that are due, report readiness."""
        now = time.monotonic()
        for run in self.runs:
            service = run.service
            if run.proc is None:
                if run.restart_at is not None and now >= run.restart_at:
                    run.restarts += 1
                    log.warning("restarting %s (restart %d)", service.name, run.restarts)
                    self._spawn(run, append=True)
                continue
            code = run.proc.poll()
            if code is None and not run.ready:
                if _answers(service.health_url):
                    run.ready = True
                    log.warning("%s is back after %.1f s", service.name, now - run.started_at)
                elif now - run.started_at > service.ready_timeout_s:  # hung while starting: a failure like a crash
                    log.warning("%s did not answer within %.0f s; killing it", service.name, service.ready_timeout_s)
                    run.proc.kill()
                    code = run.proc.wait()
            if code is None:
                continue
            up_s = now - run.started_at
            run.failures = run.failures + 1 if up_s < self.backoff.stable_s else 1
            delay = self.backoff.delay(run.failures)
            log.warning(
                "%s exited with code %s after %.0f s up; restarting in %.1f s (see %s)",
                service.name, code, up_s, delay, run.log,
            )  # fmt: skip
            run.proc, run.restart_at, run.ready = None, now + delay, False

    def first_exited(self) -> tuple[Service, int, Path] | None:
        for run in self.runs:
            if run.proc is not None and run.proc.poll() is not None:
                return run.service, run.proc.returncode, run.log
        return None

    def _wait_ready(self, service: Service, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + service.ready_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StartError(
                    f"{service.name} exited with code {proc.returncode} while starting.\n{_tail(log_path)}"
                )
            if _answers(service.health_url, timeout_s=2):
                return
            time.sleep(0.3)
        raise StartError(
            f"{service.name} did not answer {service.health_url} within {service.ready_timeout_s:.0f} s.\n{_tail(log_path)}"
        )

    def stop_all(self, timeout_s: float = 15.0) -> None:
        procs = [r.proc for r in reversed(self.runs) if r.proc is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.runs.clear()


def _answers(url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(log: Path, lines: int = 20) -> str:
    text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    return f"Last lines of {log}:\n" + "\n".join(text)
