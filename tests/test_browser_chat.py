"""A person's view: the chat page and the agent page in headless Chromium, against the real stack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import update

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.models import Ticket
from knowledge.articles import KnowledgeBase
from tests.browser import chromium, open_chat, serious_axe_violations
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

XSS = "<img src=x onerror=alert(1)>"


async def send(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def test_customer_chats_with_the_bot_in_chromium(stack: Stack, demo_kb: KnowledgeBase, test_output: Path) -> None:
    article = demo_kb.by_id("reset-password")
    assert article is not None
    async with chromium() as browser:
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        await open_chat(page, stack.relay_url + "/")
        await send(page, "hello")
        await expect(page.locator(".msg--bot").last).to_contain_text("Brightwave assistant")
        await send(page, "how can I reset my password?")
        shown = article.answer.replace("**", "")  # Markdown bold is rendered, not shown as asterisks
        await expect(page.locator(".msg--bot .msg__text").last).to_have_text(shown)
        assert await page.locator(".msg--bot .msg__text strong").count() >= 1
        await send(page, XSS)
        await expect(page.locator(".msg--customer .msg__text").last).to_have_text(XSS)
        assert await page.locator(".messages img").count() == 0 and dialogs == []
        await page.screenshot(path=str(test_output / "chat.png"), full_page=True)
        assert await serious_axe_violations(page) == []  # the demo site with the widget open, whole page

        await page.reload()  # the conversation survives a reload, shown once
        await expect(page.locator(".msg--bot .msg__text").filter(has_text=shown)).to_have_count(1)


async def test_handoff_in_two_browsers(stack: Stack, test_output: Path) -> None:
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        await create_agent(s, "carol", "Carol", "browser-test-password")
        # Earlier tests leave tickets waiting; this one takes "the first in the queue", so it starts empty.
        await s.execute(update(Ticket).where(Ticket.status != "resolved").values(status="resolved"))
    await engine.dispose()
    async with chromium() as browser:
        customer = await (await browser.new_context()).new_page()
        agent = await (await browser.new_context()).new_page()
        await agent.goto(stack.relay_url + "/agent")
        await agent.fill("#username", "carol")
        await agent.fill("#password", "browser-test-password")
        await agent.click("#login-form button[type=submit]")
        await expect(agent.locator("#conn")).to_have_text("online")

        await open_chat(customer, stack.relay_url + "/")
        await send(customer, "my router lights are all blinking red")
        await expect(customer.locator(".msg--bot").last).to_be_visible()
        await send(customer, "talk to a person please")
        await expect(customer.locator(".msg--system").last).to_contain_text(re.compile("next|in the queue"))

        await agent.locator("#queue .accept").first.click()
        await expect(agent.locator("#card .reason")).to_contain_text("asked for a person")
        await expect(agent.locator("#transcript")).to_contain_text("my router lights are all blinking red")
        await expect(customer.locator(".msg--system").last).to_have_text("Carol joined the chat.")
        await agent.screenshot(path=str(test_output / "agent-chat.png"), full_page=True)

        await agent.fill("#reply", XSS)
        await agent.press("#reply", "Enter")
        await expect(customer.locator(".msg--agent .msg__text").last).to_have_text(XSS)
        assert await customer.locator(".messages img").count() == 0
        await send(customer, "thank you!")
        await expect(agent.locator("#transcript .msg--customer").last).to_have_text("Customer" + "thank you!")

        await agent.click("#resolve")
        await expect(customer.locator(".rating")).to_be_visible()
        await customer.screenshot(path=str(test_output / "chat-rating.png"), full_page=True)
        await customer.locator(".rating button", has_text="5").click()
        await expect(customer.locator(".rating")).to_have_text("Thanks for your feedback!")
        await send(customer, "hello")
        await expect(customer.locator(".msg--bot").last).to_contain_text("Brightwave assistant")
