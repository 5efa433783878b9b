"""The real load balancer for the scale-out tests and the load bench: HAProxy started from deploy/haproxy.cfg."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "haproxy.cfg"
COOKIE = "WLRELAY"
SERVED_BY = "X-Warmline-Relay"


def require_haproxy() -> str:
    """The haproxy binary: a skip with the reason on a laptop without it, a failure under CI."""
    found = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.path.exists(p)), None)
    if found:
        return found
    reason = "haproxy is not installed (apt-get install -y haproxy; scripts/bootstrap.sh --test does it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (under CI a missing load balancer is a failure, not a skip)")
    pytest.skip(reason)


def render(relay_urls: list[str], port: int, maxconn: int = 4000) -> str:
    """deploy/haproxy.cfg with the tests' listening port and relays; everything else exactly as deployed."""
    text = CONFIG.read_text()
    text = re.sub(r"(?m)^    bind \S+$", f"    bind 127.0.0.1:{port}", text)
    text = re.sub(r"(?m)^    maxconn \d+$", f"    maxconn {maxconn}", text)
    servers = [
        f"    server relay{i} {url.removeprefix('http://')} check inter 2s fall 2 rise 2 cookie relay{i}"
        for i, url in enumerate(relay_urls, start=1)
    ]
    lines = [line for line in text.splitlines() if not line.startswith("    server relay")]
    return "\n".join([*lines, *servers]) + "\n"


@dataclass
class Balancer:
    url: str  # http://localhost:PORT: a host name, since aiohttp's cookie jar keeps no cookies for IP addresses
    relays: dict[str, str]  # server name (relay1 ...) -> the relay's own URL
    proc: subprocess.Popen[bytes]

    def pinned(self, server: str) -> dict[str, str]:
        """Headers that make the balancer send a client to one relay, as its sticky cookie does."""
        return {"Cookie": f"{COOKIE}={server}"}

    def served_by(self, headers: dict[str, str] | None = None) -> str:
        request = urllib.request.Request(f"{self.url}/health", headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as reply:
            return str(reply.headers[SERVED_BY])


@contextmanager
def running_balancer(relay_urls: list[str], scratch: Path, maxconn: int = 4000) -> Iterator[Balancer]:
    """HAProxy in the foreground on a free port in front of ``relay_urls``; stopped on exit."""
    binary = require_haproxy()
    port = free_port()
    config = scratch / f"haproxy-{port}.cfg"
    config.write_text(render(relay_urls, port, maxconn))
    subprocess.run([binary, "-c", "-q", "-f", str(config)], check=True, capture_output=True, timeout=30)
    log = (scratch / f"haproxy-{port}.log").open("wb")
    proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    balancer = Balancer(f"http://localhost:{port}", {f"relay{i}": u for i, u in enumerate(relay_urls, 1)}, proc)
    try:
        deadline = time.monotonic() + 20
        up: set[str] = set()
        while up != set(balancer.relays):  # every relay passed its health check (rise 2, inter 2 s)
            assert proc.poll() is None, f"haproxy exited: {(scratch / f'haproxy-{port}.log').read_text()}"
            assert time.monotonic() < deadline, f"haproxy did not reach every relay (up: {sorted(up)})"
            for name in balancer.relays:
                try:
                    if balancer.served_by(balancer.pinned(name)) == name:
                        up.add(name)
                except (urllib.error.URLError, OSError, KeyError):
                    pass
            time.sleep(0.2)
        yield balancer
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
