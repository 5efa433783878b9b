"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, async_playwright, expect

from tests.stack import Stack, free_port, settings_env
from warmline.processes import Supervisor, services

# Test-only npm packages (rasa-webchat, axe-core): tests/web/package.json, installed by bootstrap.sh --test.
WEB_PACKAGES = Path(__file__).resolve().parent / "web" / "node_modules"

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str:
    path = os.environ.get("WARMLINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        reason = "Debian's chromium is not installed (make test installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


def npm_file(relative: str) -> Path:
    """A file of a test-only npm package; a missing install fails in CI and skips elsewhere."""
    path = WEB_PACKAGES / relative
    if not path.exists():
        reason = f"{path} is missing: run scripts/bootstrap.sh --test (npm ci in tests/web)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no access log on the test output
        pass


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """A plain static web server on its own port: "another website" for the widget tests (another origin than the
    relay). Returns its origin, e.g. http://127.0.0.1:40123."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def relay_for_origins(stack: Stack, origins: list[str], extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """One more relay process on the stack's database and Rasa, allowing sockets from ``origins`` only
    (WARMLINE_ALLOWED_ORIGINS), so a page on another port is a real cross-origin embed. Yields its URL; stopped on
    exit."""
    settings = stack.settings.model_copy(update={"relay_port": free_port()})
    env = {**settings_env(settings), "WARMLINE_ALLOWED_ORIGINS": ",".join(origins), **(extra_env or {})}
    relay = next(s for s in services(settings, stack.model, env) if s.name == "relay")
    supervisor = Supervisor(settings)
    try:
        supervisor.start(relay)
        yield settings.relay_url
    finally:
        supervisor.stop_all()


async def open_chat(page: Page, url: str) -> None:
    """Go to a page that embeds the widget, open it from its launcher (unless it remembers being open) and wait
    until it is online. Playwright's CSS selectors reach into the widget's open shadow root."""
    await page.goto(url)
    launcher = page.locator("#warmline-widget #launcher")
    await expect(launcher).to_be_visible()
    if await launcher.get_attribute("aria-expanded") != "true":
        await launcher.click()
    await expect(page.locator("#warmline-widget #status")).to_have_text("Online")


async def serious_axe_violations(page: Page, context: str = "document") -> list[tuple[str, str, int]]:
    """axe-core (npm, injected into the page) over ``context`` (a JS expression: the document, or an axe context
    object); returns the serious and critical violations as (rule, impact, nodes), after printing all of them."""
    # Evaluated by the test harness, not added as a <script>: the relay's pages forbid inline scripts (their CSP),
    # and a test must not weaken the policy it runs under.
    await page.evaluate(npm_file("axe-core/axe.min.js").read_text() + "\n;undefined")
    result = await page.evaluate(f"axe.run({context}, {{ resultTypes: ['violations'] }})")
    found = [(v["id"], v["impact"], len(v["nodes"])) for v in result["violations"]]
    print("axe-core violations (rule, impact, nodes):", found)
    return [v for v in found if v[1] in ("serious", "critical")]


def stale_event_replayer(
    trigger: str, events: tuple[str, ...], replayed: list[str]
) -> Callable[[WebSocketRoute], None]:
    """A Socket.IO WebSocket route (``page.route_web_socket``) that passes every frame through and, right after the
    first frame containing ``trigger``, sends the page again the last frame it passed carrying one of ``events``
    (appended to ``replayed``): what happens when an event read just before a change is sent by another task or
    relay process just after it. Relayed events from different tasks have no order; the page must cope."""

    def route_socket(route: WebSocketRoute) -> None:
        server = route.connect_to_server()
        last: list[str] = []

        def to_page(frame: str | bytes) -> None:
            route.send(frame)
            if not isinstance(frame, str):
                return
            if any(f'"{name}"' in frame for name in events):
                last[:] = [frame]
            elif trigger in frame and last and not replayed:
                replayed.append(last.pop())
                route.send(replayed[-1])

        server.on_message(to_page)
        route.on_message(server.send)

    return route_socket
