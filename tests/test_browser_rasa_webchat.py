"""Rasa's own widget, unchanged: rasa-webchat 1.0.1 from npm on a page of another origin (its own port), pointed at
a relay that allows that origin, against the real Rasa and action server. Greeting from its init payload, a KB
answer, the "Talk to a person" quick reply, a real agent's reply, a reload in the human phase, the resolve message.
Screenshots land in test-output/."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import update

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.models import Conversation, Ticket
from knowledge.articles import KnowledgeBase
from tests.agent_client import AgentClient, login
from tests.browser import chromium, npm_file, relay_for_origins, static_site
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "webchat-browser-password"
# A bot's message as rasa-webchat shows it (not its typing dots). It shows each after a delay that grows with the
# text's length (up to 3 s, one after another), hence the longer waits.
RESPONSE = ".rw-from-response .rw-message-text"
SHOWN_MS = 15_000

# The snippet rasa-webchat's README gives a site owner, with the relay as socketUrl.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A site with rasa-webchat</title></head>
<body><h1>Some company's website</h1>
<script src="/webchat.js"></script>
<script>
  window.WebChat.default({
    socketUrl: %(relay)s, socketPath: "/socket.io/", initPayload: "/get_started",
    customData: { language: "en" }, title: "Brightwave", params: { storage: "local" },
  }, null);
</script></body></html>
"""


async def say(page: Page, text: str) -> None:
    await page.fill(".rw-new-message", text)
    await page.press(".rw-new-message", "Enter")


async def session_id(page: Page) -> str:
    stored = await page.evaluate("localStorage.getItem('chat_session')")
    return str(json.loads(stored)["session_id"])


async def agent_says(agent: AgentClient, ticket_id: int, text: str) -> None:
    ack = await agent.call("agent_message", {"ticket_id": ticket_id, "text": text, "client_id": str(uuid.uuid4())})
    assert ack["ok"], ack


async def customer_said(agent: AgentClient, text: str) -> None:
    while True:  # chat_message carries the chat's messages, the bot's and the system's included
        event = await agent.next("chat_message", timeout=15)
        if event["message"]["sender"] == "customer" and event["message"]["text"] == text:
            return


async def test_rasa_webchat_on_another_origin(
    stack: Stack, demo_kb: KnowledgeBase, test_output: Path, tmp_path: Path
) -> None:
    article = demo_kb.by_id("reset-password")
    assert article is not None
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        # Tickets other tests left waiting would be offered first: start from an empty queue.
        await s.execute(update(Ticket).where(Ticket.status != "resolved").values(status="resolved"))
        await s.execute(update(Conversation).where(Conversation.status != "bot").values(status="bot"))
        await create_agent(s, "dana", "Dana", PASSWORD)
    await engine.dispose()

    shutil.copy(npm_file("rasa-webchat/lib/index.js"), tmp_path / "webchat.js")
    with static_site(tmp_path) as site, relay_for_origins(stack, [site]) as relay:
        (tmp_path / "index.html").write_text(PAGE % {"relay": json.dumps(relay)})
        status, body = await login(relay, "dana", PASSWORD)
        assert status == 200
        agent = AgentClient(relay)
        await agent.connect(body["token"])
        try:
            async with chromium() as browser:
                page = await (await browser.new_context()).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.goto(site + "/")

                await page.click(".rw-launcher")  # opening sends the init payload, /get_started
                await expect(page.locator(RESPONSE).first).to_contain_text("Brightwave assistant", timeout=SHOWN_MS)

                await say(page, "how can I reset my password?")
                first_line = article.answer.replace("**", "").splitlines()[0]
                await expect(page.locator(RESPONSE).last).to_contain_text(first_line[:40], timeout=SHOWN_MS)

                await say(page, "qwzx blorp vantablack")
                reply = page.locator(".rw-reply", has_text="Talk to a person").last
                await expect(reply).to_be_visible(timeout=SHOWN_MS)
                await page.screenshot(path=str(test_output / "rasa-webchat-bot.png"))
                await reply.click()
                conversation = await session_id(page)
                waiting = await agent.wait_for_ticket(conversation, timeout=20)
                assert (await agent.call("accept", {"ticket_id": waiting["ticket_id"]}))["ok"]
                await expect(page.locator(RESPONSE).last).to_contain_text("Dana joined the chat.", timeout=SHOWN_MS)

                await agent_says(agent, waiting["ticket_id"], "Hi, Dana here. How can I help?")
                await expect(page.locator(RESPONSE).last).to_contain_text("Dana here", timeout=SHOWN_MS)

                await page.reload()  # rasa-webchat keeps its session id; the chat with Dana goes on
                await expect(page.locator(RESPONSE).filter(has_text="Dana here")).to_have_count(1, timeout=SHOWN_MS)
                assert await session_id(page) == conversation
                await say(page, "still there after a reload?")
                await customer_said(agent, "still there after a reload?")
                await agent_says(agent, waiting["ticket_id"], "Yes, still here.")
                await expect(page.locator(RESPONSE).last).to_contain_text("Yes, still here.", timeout=SHOWN_MS)
                await page.screenshot(path=str(test_output / "rasa-webchat-agent.png"))

                assert (await agent.call("resolve", {"ticket_id": waiting["ticket_id"]}))["ok"]
                await expect(page.locator(RESPONSE).last).to_contain_text(
                    "Dana has closed this chat.", timeout=SHOWN_MS
                )
                await page.screenshot(path=str(test_output / "rasa-webchat-resolved.png"))
                assert errors == []
        finally:
            await agent.close()
