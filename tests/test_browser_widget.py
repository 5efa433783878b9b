"""Warmline's embeddable widget on another website (its own port, so another origin than the relay), against the
real Rasa, action server and relay, in headless Chromium: the snippet and its attributes, a host page whose CSS and
scripts try to get in the way, the bot (greeting, "Assistant is typing", a KB answer with Markdown, HTML kept as
text), the unread badge and the session across pages and reloads, keyboard use, the human phase with a real agent
client (queue, joined, typing and read receipts both ways), resolve and rating, phone width, an axe-core scan, and
a page whose origin the relay does not allow. Screenshots land in test-output/."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, expect
from sqlalchemy import update

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.models import ChatRating, Conversation, Ticket
from knowledge.articles import KnowledgeBase
from tests.agent_client import AgentClient, login
from tests.browser import (
    chromium,
    open_chat,
    relay_for_origins,
    serious_axe_violations,
    stale_event_replayer,
    static_site,
)
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "widget-browser-password"
XSS = "<img src=x onerror=alert(1)>"
VERSION = json.loads((Path(__file__).resolve().parent.parent / "console" / "package.json").read_text())["version"]
# The secret the site's backend shares with the relay (WARMLINE_IDENTITY_SECRET) to sign the user's id.
IDENTITY_SECRET = "widget-test-identity-secret"

# A host page that tries to get in the way: global styles for every element, and a global `io` of its own.
HOSTILE = """<style>
  * { color: rgb(255, 0, 0) !important; font-family: "Comic Sans MS", cursive !important; }
  button { background: rgb(0, 255, 0) !important; }
  .msg, .messages, #text, .launcher { display: none !important; }
</style>
<script>window.io = function () { throw new Error("the host page's own io"); };</script>"""


BLOCKED_WEBSOCKET = """window.WebSocket = class {
  constructor(url) {
    this.url = url; this.readyState = 0;
    setTimeout(() => {
      this.readyState = 3;
      if (this.onerror) this.onerror(new Event("error"));
      if (this.onclose) this.onclose({ code: 1006, reason: "", wasClean: false });
    }, 20);
  }
  send() {}
  close() {}
};"""


def site_page(relay: str, title: str, attributes: dict[str, str], head: str = "") -> str:
    attrs = " ".join(f'{k}="{v}"' for k, v in attributes.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,">{head}</head>
<body><header><h1>{title}</h1></header><main><p>Acme sells anvils.</p><a href="/other.html">Another page</a></main>
<script src="{relay}/widget/{VERSION}/warmline.js" {attrs} async></script>
</body></html>"""


def console_log(page: Page) -> list[str]:
    lines: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        lines.append(f"{message.type}: {message.text}")

    page.on("console", keep)
    return lines


async def send(page: Page, text: str) -> None:
    await page.fill("#warmline-widget #text", text)
    await page.press("#warmline-widget #text", "Enter")


async def agent_event(agent: AgentClient, name: str, **match: Any) -> dict[str, Any]:
    while True:
        event: dict[str, Any] = await agent.next(name, timeout=15)
        if all(event.get(k) == v for k, v in match.items()):
            return event


async def customer_message(agent: AgentClient, text: str) -> dict[str, Any]:
    while True:  # chat_message carries the chat's messages, the bot's and the system's included
        event = await agent.next("chat_message", timeout=15)
        if event["message"]["sender"] == "customer" and event["message"]["text"] == text:
            return dict(event["message"])


async def reset_queue(stack: Stack, agent_username: str | None = None) -> None:
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        # Tickets other tests left waiting would be offered first: start from an empty queue.
        await s.execute(update(Ticket).where(Ticket.status != "resolved").values(status="resolved"))
        await s.execute(update(Conversation).where(Conversation.status != "bot").values(status="bot"))
        if agent_username:
            await create_agent(s, agent_username, agent_username.title(), PASSWORD)
    await engine.dispose()


async def test_widget_serves_with_cache_headers(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.relay_url}/widget/{VERSION}/warmline.js") as r:
            assert r.status == 200 and r.content_type == "application/javascript"
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            versioned = await r.read()
        async with http.get(f"{stack.relay_url}/widget/warmline.js") as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=300"
            assert await r.read() == versioned
        async with http.get(f"{stack.relay_url}/widget/0.0.0-not-a-version/warmline.js") as r:
            assert r.status == 404


async def test_widget_on_another_site(stack: Stack, demo_kb: KnowledgeBase, test_output: Path, tmp_path: Path) -> None:
    article = demo_kb.by_id("reset-password")
    assert article is not None
    await reset_queue(stack, "dana")
    with static_site(tmp_path) as site, relay_for_origins(stack, [site]) as relay:
        attributes = {
            "data-relay": relay, "data-title": "Acme help", "data-color": "#6a1b9a", "data-position": "left",
            "data-greeting": "Hello from **Acme**!", "data-locale": "en",
        }  # fmt: skip
        (tmp_path / "index.html").write_text(site_page(relay, "Acme anvils", attributes, HOSTILE))
        (tmp_path / "other.html").write_text(site_page(relay, "Acme anvils: prices", attributes, HOSTILE))
        status, body = await login(relay, "dana", PASSWORD)
        assert status == 200
        agent = AgentClient(relay)
        await agent.connect(body["token"])
        try:
            async with chromium() as browser:
                await widget_walkthrough(browser, site, agent, article.answer, test_output)
        finally:
            await agent.close()


async def widget_walkthrough(browser: Browser, site: str, agent: AgentClient, answer: str, out: Path) -> None:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    replayed: list[str] = []
    # A queue status read before the accept, delivered after "joined": the widget must keep the queue line hidden.
    await page.route_web_socket(
        "**/socket.io/**", stale_event_replayer("joined the chat.", ("queue_position",), replayed)
    )
    logs = console_log(page)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:  # an alert() would mean injected HTML ran
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    w = "#warmline-widget "

    # Closed at first: a launcher bubble on the left (data-position), in data-color, no badge yet.
    await page.goto(site + "/index.html")
    launcher = page.locator(w + "#launcher")
    await expect(launcher).to_be_visible()
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await expect(page.locator(w + "#panel")).to_be_hidden()
    await expect(page.locator(w + "#badge")).to_be_hidden()
    box = await launcher.bounding_box()
    assert box is not None and box["x"] < 100
    assert await launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(106, 27, 154)"

    # Keyboard: Tab reaches the launcher, Enter opens the panel and puts the focus in the message box.
    for _ in range(5):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == "warmline-widget":
            break
    await page.keyboard.press("Enter")
    await expect(page.locator(w + "#status")).to_have_text("Online")
    assert await page.evaluate("document.getElementById('warmline-widget').shadowRoot.activeElement.id") == "text"
    await expect(page.locator(w + ".header h2")).to_have_text("Acme help")
    await expect(page.locator(w + ".msg--greeting")).to_have_text("Hello from Acme!")
    assert await page.locator(w + ".msg--greeting strong").count() == 1

    # The host page's CSS does not reach in, nor does its global `io`.
    text_box = page.locator(w + "#text")
    assert await text_box.evaluate("e => getComputedStyle(e).color") != "rgb(255, 0, 0)"
    assert "Comic" not in await text_box.evaluate("e => getComputedStyle(e).fontFamily")
    send_button = page.locator(w + "#send")
    assert await send_button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(106, 27, 154)"

    # "Assistant is typing…" shows while the bot thinks (recorded by an observer: the reply can be quick).
    await page.evaluate("""() => {
        const line = document.getElementById('warmline-widget').shadowRoot.getElementById('typing');
        window.typingSeen = [];
        new MutationObserver(() => { if (!line.hidden) window.typingSeen.push(line.textContent); })
            .observe(line, { attributes: true, childList: true, characterData: true, subtree: true });
    }""")
    await send(page, "hello")
    await expect(page.locator(w + ".msg--bot .msg__text").last).to_contain_text("Brightwave assistant")
    assert "Assistant is typing…" in await page.evaluate("window.typingSeen")
    await expect(page.locator(w + "#typing")).to_be_hidden()

    await send(page, "how can I reset my password?")
    await expect(page.locator(w + ".msg--bot .msg__text").last).to_have_text(answer.replace("**", ""))
    assert await page.locator(w + ".msg--bot .msg__text").last.locator("strong").count() >= 1
    await send(page, XSS)
    await expect(page.locator(w + ".msg--customer .msg__text").last).to_have_text(XSS)
    assert await page.locator(w + ".messages img").count() == 0 and dialogs == []
    await page.screenshot(path=str(out / "widget-bot.png"))

    # The quick reply hands the chat to a person: queue position, then the agent joins.
    await send(page, "qwzx blorp vantablack")
    person = page.locator(w + ".replies button", has_text="Talk to a person")
    await expect(person).to_be_visible()
    await person.click()
    session_id = await page.evaluate("localStorage.getItem('warmline.session_id')")
    waiting = await agent.wait_for_ticket(session_id, timeout=20)
    ticket_id = waiting["ticket_id"]
    await expect(page.locator(w + "#queue-status")).to_contain_text("next")
    await expect(page.locator(w + ".msg--pending")).to_have_count(0)  # every message acknowledged by the relay
    assert (await agent.call("accept", {"ticket_id": ticket_id}))["ok"]
    await expect(page.locator(w + ".msg--system").last).to_have_text("Dana joined the chat.")
    await expect(page.locator(w + "#queue-status")).to_be_hidden()  # the stale status replayed after it is dropped

    # Typing both ways, the agent's reply, read receipts both ways.
    await page.locator(w + "#text").press_sequentially("are you")
    await agent_event(agent, "typing", ticket_id=ticket_id, sender="customer", typing=True)
    await agent.call("typing", {"ticket_id": ticket_id, "typing": True})
    await expect(page.locator(w + "#typing")).to_have_text("Dana is typing…")
    # The typing event came after the replayed status, so the widget has read it by now, and dropped it.
    assert len(replayed) == 1 and await page.locator(w + "#queue-status").is_hidden()
    await page.locator(w + "#text").fill("")
    await agent.call(
        "agent_message", {"ticket_id": ticket_id, "text": "Hi, Dana here.", "client_id": str(uuid.uuid4())}
    )
    agent_line = page.locator(w + ".msg--agent").last
    await expect(agent_line.locator(".msg__text")).to_have_text("Hi, Dana here.")
    await expect(agent_line.locator(".msg__who")).to_have_text("Dana")
    await expect(page.locator(w + "#typing")).to_be_hidden()
    await agent_event(agent, "read", ticket_id=ticket_id, reader="customer")  # the open panel saw it
    await send(page, "my anvil is too heavy")
    said = await customer_message(agent, "my anvil is too heavy")
    assert (await agent.call("read", {"ticket_id": ticket_id, "message_id": said["message_id"]}))["ok"]
    await expect(page.locator(w + ".msg--customer").last.locator(".msg__seen")).to_have_text("Seen")
    await page.screenshot(path=str(out / "widget-agent.png"))

    # Escape closes the panel and gives the focus back to the launcher; a reply while closed shows the badge.
    await page.locator(w + "#text").focus()
    await page.keyboard.press("Escape")
    await expect(page.locator(w + "#panel")).to_be_hidden()
    assert await page.evaluate("document.getElementById('warmline-widget').shadowRoot.activeElement.id") == "launcher"
    await agent.call(
        "agent_message", {"ticket_id": ticket_id, "text": "Try two hands.", "client_id": str(uuid.uuid4())}
    )
    await expect(page.locator(w + "#badge")).to_have_text("1")
    await expect(launcher).to_have_attribute("aria-label", "Open chat (1 unread)")
    await page.screenshot(path=str(out / "widget-badge.png"))

    # Another page of the site: same session, the badge remembered; opening shows the history and clears it.
    await page.click("text=Another page")
    await expect(page).to_have_title("Acme anvils: prices")
    await expect(page.locator(w + "#badge")).to_have_text("1")
    await page.locator(w + "#launcher").click()
    await expect(page.locator(w + "#status")).to_have_text("Online")
    await expect(page.locator(w + "#badge")).to_be_hidden()
    await expect(page.locator(w + ".msg--agent .msg__text").last).to_have_text("Try two hands.")
    await expect(page.locator(w + ".msg--customer .msg__text").filter(has_text="my anvil is too heavy")).to_have_count(
        1
    )
    assert await page.evaluate("localStorage.getItem('warmline.session_id')") == session_id

    # A reload in the human phase: still open, and the chat with Dana goes on.
    await page.reload()
    await expect(page.locator(w + "#status")).to_have_text("Online")
    await send(page, "two hands worked")
    await customer_message(agent, "two hands worked")

    # axe-core over the page with the widget open and full of messages: no serious or critical violations.
    # Scoped to the widget: the host page's own (deliberately garish) styles are not the widget's to answer for.
    assert await serious_axe_violations(page, "{ include: ['#warmline-widget'] }") == []

    # Resolve: the closing message and the rating.
    assert (await agent.call("resolve", {"ticket_id": ticket_id}))["ok"]
    await expect(page.locator(w + ".msg--system").filter(has_text="Dana has closed this chat.")).to_have_count(1)
    await expect(page.locator(w + ".rating")).to_be_visible()
    await page.locator(w + ".rating button", has_text="5").click()
    await expect(page.locator(w + ".rating")).to_have_text("Thanks for your feedback!")
    await page.screenshot(path=str(out / "widget-rated.png"))
    assert errors == [] and [line for line in logs if line.startswith("error")] == []


async def test_widget_at_phone_width_in_german(stack: Stack, test_output: Path, tmp_path: Path) -> None:
    with static_site(tmp_path) as site, relay_for_origins(stack, [site]) as relay:
        attributes = {"data-title": "Acme Hilfe", "data-locale": "de"}
        (tmp_path / "index.html").write_text(site_page(relay, "Acme on a phone", attributes))
        async with chromium() as browser:
            context = await browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
            page = await context.new_page()
            await page.goto(site + "/index.html")
            await expect(page.locator("#warmline-widget #launcher")).to_have_attribute("aria-label", "Chat öffnen")
            await open_chat(page, site + "/index.html")
            await expect(page.locator("#warmline-widget #text")).to_have_attribute("placeholder", "Ihre Frage…")
            await expect(page.locator("#warmline-widget .msg--greeting")).to_have_text("Hallo! Fragen Sie uns einfach.")
            panel = await page.locator("#warmline-widget #panel").bounding_box()
            assert panel is not None and panel["width"] == 375 and panel["height"] == 667
            await send(page, "hello")
            await expect(page.locator("#warmline-widget .msg--bot .msg__text").last).to_contain_text("Brightwave")
            assert await page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
            await page.screenshot(path=str(test_output / "widget-phone.png"))
            await page.locator("#warmline-widget .close").click()
            await expect(page.locator("#warmline-widget #launcher")).to_be_visible()


async def test_widget_on_an_origin_the_relay_does_not_allow(stack: Stack, tmp_path: Path) -> None:
    with static_site(tmp_path) as site, relay_for_origins(stack, ["https://only-this-site.example"]) as relay:
        (tmp_path / "index.html").write_text(site_page(relay, "Not allowed", {}))
        async with chromium() as browser:
            page = await browser.new_page()
            logs = console_log(page)
            await page.goto(site + "/index.html")
            await page.locator("#warmline-widget #launcher").click()
            # The relay refuses the socket at connect (Socket.IO connect_error with a code); the widget says why.
            await expect(page.locator("#warmline-widget #error")).to_have_text("Chat is not available on this page.")
            refusal = [line for line in logs if "Warmline:" in line and "refused this page" in line]
            assert refusal and "origin_not_allowed" in refusal[0] and site in refusal[0], logs
            await expect(page.locator("#warmline-widget #status")).not_to_have_text("Online")


def user_hash(user_id: str) -> str:
    return hmac.new(IDENTITY_SECRET.encode(), user_id.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("signature", "code"),
    [("valid", None), ("wrong", "identity_invalid"), ("missing", "identity_required")],
)
async def test_widget_identity(stack: Stack, tmp_path: Path, signature: str, code: str | None) -> None:
    identity = {"data-user-id": "u-4242", "data-user-name": "Maya", "data-user-email": "maya@example.com"}
    if signature == "valid":
        identity["data-user-hash"] = user_hash("u-4242")
    elif signature == "wrong":
        identity["data-user-hash"] = user_hash("someone-else")
    env = {"WARMLINE_IDENTITY_SECRET": IDENTITY_SECRET, "WARMLINE_IDENTITY_REQUIRED": "true"}
    with static_site(tmp_path) as site, relay_for_origins(stack, [site], env) as relay:
        (tmp_path / "index.html").write_text(site_page(relay, "Signed in", identity))
        async with chromium() as browser:
            page = await browser.new_page()
            logs = console_log(page)
            await page.goto(site + "/index.html")
            await page.locator("#warmline-widget #launcher").click()
            status = page.locator("#warmline-widget #status")
            if code is None:
                await expect(status).to_have_text("Online")
                await send(page, "hello")
                await expect(page.locator("#warmline-widget .msg--bot .msg__text").last).to_contain_text("Brightwave")
                await expect(page.locator("#warmline-widget #error")).to_be_hidden()
                return
            error = page.locator("#warmline-widget #error")
            try:  # refused at session_request; if the relay waits for the first message, send one
                await expect(error).to_be_visible(timeout=3000)
            except AssertionError:
                await send(page, "hello")
                await expect(error).to_be_visible()
            assert any(code in line for line in logs if line.startswith("error")), logs
            assert await page.locator("#warmline-widget .msg--bot .msg__text").count() == 0  # the bot never answered


async def test_widget_falls_back_to_long_polling(stack: Stack, tmp_path: Path) -> None:
    """Where WebSockets are blocked (a proxy that refuses the upgrade), the widget chats over Engine.IO long-polling
    instead. The page's WebSocket fails the way a blocked one does: an error, then close code 1006."""
    with static_site(tmp_path) as site, relay_for_origins(stack, [site]) as relay:
        (tmp_path / "index.html").write_text(site_page(relay, "No WebSockets here", {}))
        async with chromium() as browser:
            page = await browser.new_page()
            await page.add_init_script(BLOCKED_WEBSOCKET)
            polls: list[str] = []
            page.on("request", lambda r: polls.append(r.method) if "transport=polling" in r.url else None)
            await open_chat(page, site + "/index.html")
            await send(page, "hello")
            await expect(page.locator("#warmline-widget .msg--bot .msg__text").last).to_contain_text("Brightwave")
            assert "POST" in polls and "GET" in polls  # up and down by polling


async def test_widget_ends_a_bot_only_chat_and_rates_it_once(stack: Stack, test_output: Path, tmp_path: Path) -> None:
    with static_site(tmp_path) as site, relay_for_origins(stack, [site]) as relay:
        (tmp_path / "index.html").write_text(site_page(relay, "Rate the bot", {}))
        async with chromium() as browser:
            page = await browser.new_page()
            await open_chat(page, site + "/index.html")
            w = "#warmline-widget "
            await send(page, "hello")
            await expect(page.locator(w + ".msg--bot .msg__text").last).to_contain_text("Brightwave")
            await page.locator(w + ".end").click()  # "End chat": a bot-only chat is asked for a rating (scope chat)
            await expect(page.locator(w + ".rating")).to_contain_text("How would you rate this chat?")
            await page.locator(w + ".rating button", has_text="4").click()
            await expect(page.locator(w + ".rating")).to_have_text("Thanks for your feedback!")
            await page.screenshot(path=str(test_output / "widget-chat-rated.png"))
            session_id = await page.evaluate("localStorage.getItem('warmline.session_id')")
            await page.locator(w + ".end").click()  # asked once per conversation: no second request
            await page.wait_for_timeout(1000)
            await expect(page.locator(w + ".rating")).to_have_count(1)
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s:
        rating = await s.get(ChatRating, session_id)
    await engine.dispose()
    assert rating is not None and rating.score == 4 and rating.asked_because == "ended"
