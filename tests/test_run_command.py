"""`warmline run` as an operator uses it: started for real, stopped by a signal, nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.settings import ROOT, Settings
from tests.stack import free_port
from warmline.training import ensure_model


def _nobody_listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _kill_leftovers(state_dir: Path) -> list[int]:
    """Kill (and return) every process still running with this state dir: the services start in sessions of their
    own, so a failed run would otherwise leave them behind for the rest of the suite."""
    marker = f"WARMLINE_STATE_DIR={state_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
                found.append(int(proc.name))
        except OSError:  # gone already, or not ours to read
            continue
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_stops_every_service_on_a_signal(tmp_path: Path, stop_signal: signal.Signals) -> None:
    model, _ = ensure_model(Settings())  # the cached model, so the command does not train
    (tmp_path / "models").mkdir()
    shutil.copy(model, tmp_path / "models" / model.name)
    ports = {f"WARMLINE_{name}_PORT": free_port() for name in ("RELAY", "RASA", "ACTIONS")}
    env = {
        **os.environ, "WARMLINE_STATE_DIR": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": "",
        **{name: str(port) for name, port in ports.items()},
    }  # fmt: skip
    run = subprocess.Popen(
        [sys.executable, "-m", "warmline.cli", "run"], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as a shell starts a background job
    )  # fmt: skip
    try:
        said: list[str] = []
        deadline = time.monotonic() + 240
        while not any("Warmline is ready" in line for line in said):
            assert run.poll() is None and time.monotonic() < deadline, "".join(said)
            said.append(run.stdout.readline())  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{ports['WARMLINE_RELAY_PORT']}/" in "".join(said)
        run.send_signal(stop_signal)
        rest, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        leftovers = _kill_leftovers(tmp_path)
    assert run.returncode == 0, rest
    assert "Stopping Warmline" in rest
    assert leftovers == [], "a service outlived `warmline run`"
    assert all(_nobody_listens(port) for port in ports.values())
