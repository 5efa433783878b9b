"""The supervisor behind `warmline run`: a service that exits is restarted with capped exponential backoff, logged,
and the others are left running. Real child processes (small HTTP servers), real signals."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from common.settings import Settings
from tests.stack import free_port
from warmline.processes import Backoff, Service, Supervisor

# A health endpoint that answers 200; with an argument, the process exits that many seconds after it is up.
SERVER = """
import http.server, sys, threading, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(str(os.getpid()).encode())
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
if len(sys.argv) > 2:
    threading.Timer(float(sys.argv[2]), lambda: os._exit(7)).start()
s.serve_forever()
"""


def http_service(name: str, lives_s: float | None = None) -> Service:
    port = free_port()
    argv = [sys.executable, "-c", SERVER, str(port), *([str(lives_s)] if lives_s is not None else [])]
    return Service(name, argv, port, f"http://127.0.0.1:{port}/", ready_timeout_s=10)


def pid_answering(service: Service) -> int:
    with urllib.request.urlopen(service.health_url, timeout=2) as reply:
        return int(reply.read())


def wait_until(check: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s")


def test_a_killed_service_is_restarted_and_the_others_keep_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = Supervisor(Settings(state_dir=tmp_path), Backoff(first_s=0.2, cap_s=0.8, stable_s=5))
    rasa, relay = http_service("rasa"), http_service("relay")
    stop = threading.Event()
    try:
        supervisor.start(rasa)
        supervisor.start(relay)
        relay_pid = pid_answering(relay)
        killed = pid_answering(rasa)
        caplog.set_level(logging.WARNING, logger="warmline.supervisor")
        threading.Thread(target=supervisor.supervise, args=(stop, 0.05), daemon=True).start()
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: supervisor.pid_of("rasa") not in (None, killed), 5)
        wait_until(lambda: "rasa is back" in caplog.text, 10)
        assert pid_answering(rasa) == supervisor.pid_of("rasa") != killed
        assert pid_answering(relay) == relay_pid  # the relay never noticed
        assert "rasa exited with code -9" in caplog.text and "restarting rasa (restart 1)" in caplog.text
        log_file = next(r.log for r in supervisor.runs if r.service.name == "rasa")
        assert "restarted by warmline run (restart 1)" in log_file.read_text()
    finally:
        stop.set()
        supervisor.stop_all()


def test_a_crash_loop_backs_off_exponentially_up_to_the_cap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(Settings(state_dir=tmp_path), Backoff(first_s=0.2, cap_s=0.8, stable_s=5))
    flaky = http_service("flaky", lives_s=0.3)  # up, answers, then exits with 7: a crash loop
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger="warmline.supervisor")
    try:
        supervisor.start(flaky)
        threading.Thread(target=supervisor.supervise, args=(stop, 0.02), daemon=True).start()
        exits = lambda: [r for r in caplog.records if "exited with code" in r.msg]  # noqa: E731
        wait_until(lambda: len(exits()) >= 5, 20)
        stop.set()
        delays = [float(r.args[3]) for r in exits()[:5]]  # type: ignore[index]
        assert delays == [0.2, 0.4, 0.8, 0.8, 0.8]
        assert all(r.args[1] == 7 for r in exits())  # type: ignore[index]
    finally:
        stop.set()
        supervisor.stop_all()


def test_a_service_up_longer_than_stable_s_restarts_after_the_first_delay_again() -> None:
    backoff = Backoff(first_s=1, cap_s=30, stable_s=60)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_stop_all_stops_a_service_waiting_for_its_restart_and_the_running_ones(tmp_path: Path) -> None:
    supervisor = Supervisor(Settings(state_dir=tmp_path), Backoff(first_s=30, cap_s=30))
    a, b = http_service("a"), http_service("b")
    supervisor.start(a)
    supervisor.start(b)
    a_pid = pid_answering(a)
    os.kill(a_pid, signal.SIGKILL)
    wait_until(lambda: supervisor.check() or supervisor.pid_of("a") is None, 5)  # waits 30 s for its restart
    b_pid = supervisor.pid_of("b")
    supervisor.stop_all()
    assert b_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(b_pid, 0)
