"""The copilot in the agent console (headless Chromium, the real relay, Rasa and action server): the handoff's
suggestions are there at accept, a human-phase message gets its own suggestions under it, one click inserts an
article's answer which is sent, an answer saved to the KB lands in the editors' inbox with the agent's name and the
ticket; the customer's page never shows a suggestion. Screenshots in test-output/copilot-*.png."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import update

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.models import Agent, Conversation, Ticket
from tests.browser import chromium, open_chat
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "copilot-browser-password"
W = "#warmline-widget "


async def send(page: Page, text: str) -> None:
    await page.fill(W + "#text", text)
    await page.press(W + "#text", "Enter")


async def logged_in(page: Page, url: str, username: str) -> None:
    await page.goto(url)
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")


async def test_suggestions_insert_and_save_to_the_kb_in_the_console(stack: Stack, test_output: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    agent_name = f"Cleo{tag}"
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        # Tickets and agents other tests left behind would take this escalation: start from an empty queue.
        await s.execute(update(Ticket).where(Ticket.status != "resolved").values(status="resolved"))
        await s.execute(update(Conversation).where(Conversation.status != "bot").values(status="bot"))
        await s.execute(update(Agent).values(presence="offline"))
        await create_agent(s, f"cleo{tag}", agent_name, PASSWORD)
        await create_agent(s, f"edna{tag}", f"Edna{tag}", PASSWORD, role="editor")
    await engine.dispose()
    async with chromium() as browser:
        agent = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
        await logged_in(agent, stack.relay_url + "/agent", f"cleo{tag}")
        await expect(agent.locator("#conn")).to_have_text("online")
        customer = await (await browser.new_context()).new_page()
        await open_chat(customer, stack.relay_url + "/")

        await send(customer, "I forgot my password and cannot log in")
        await expect(customer.locator(W + ".msg--bot")).not_to_have_count(0)
        await send(customer, "talk to a person please")
        await expect(agent.locator("#queue li.offered")).to_have_count(1)
        await agent.locator("#queue .accept").first.click()

        # The handoff's suggestions are there with the card, under the customer's question.
        handoff = agent.locator("#transcript .suggest").first
        await expect(handoff).to_contain_text("Suggested for the customer's question")
        await expect(handoff.locator(".suggest__item").first).to_contain_text("Reset your account password")

        # A message in the human phase: relayed, then its own suggestions under it.
        await send(customer, "where can I download my bill as a pdf")
        asked = agent.locator("#transcript .msg--customer").filter(has_text="download my bill")
        await expect(asked).to_have_count(1)
        shown = agent.locator("#transcript .suggest").filter(has_text="View or download your bill")
        await expect(shown).to_have_count(1)
        await expect(shown.locator(".suggest__conf").first).to_contain_text("%")
        await agent.screenshot(path=str(test_output / "copilot-suggestions.png"), full_page=True)

        # One click inserts the article's answer, rendered; Enter sends it.
        await shown.locator(".suggest__item").first.locator(".suggest__insert").click()
        await expect(agent.locator("#reply")).not_to_have_value("")  # after the relay counted the insert
        inserted = await agent.input_value("#reply")
        assert inserted and "{{" not in inserted
        await agent.press("#reply", "Enter")
        shown_to_customer = inserted.strip().replace("**", "")  # the widget renders the answer's Markdown
        await expect(customer.locator(W + ".msg--agent .msg__text").last).to_have_text(shown_to_customer)
        # The customer's page never shows a suggestion; the older set stays on its message.
        assert await customer.locator(W + ".suggest").count() == 0
        assert "Suggested" not in await customer.locator("#warmline-widget").inner_text()
        await expect(agent.locator("#transcript .suggest")).to_have_count(2)

        # An answer the KB lacks, saved to the KB as a draft article.
        question = f"Can I pay my bill with dogecoin {tag}?"
        await send(customer, question)
        await expect(agent.locator("#transcript .msg--customer").filter(has_text="dogecoin")).to_have_count(1)
        answer = f"No: cards, bank transfer and PayPal only ({tag})."
        await agent.fill("#reply", answer)
        await agent.press("#reply", "Enter")
        mine = agent.locator("#transcript .msg--agent").filter(has_text=answer)
        await expect(mine).to_have_count(1)
        await mine.locator(".save-kb").click()
        await mine.locator(".save-kb__where").select_option("draft")
        await mine.locator(".save-kb__form button").click()
        await expect(mine.locator(".save-kb__done")).to_contain_text("editors' inbox")
        await agent.screenshot(path=str(test_output / "copilot-saved.png"), full_page=True)
        ticket_id = await agent.evaluate("window.warmline.state.current")

        # The editor's inbox shows it, with the agent's name and the ticket.
        editor = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
        await logged_in(editor, stack.relay_url + "/editor", f"edna{tag}")
        await editor.click("[data-tab=inbox]")
        group = editor.locator("#groups > li").filter(has_text=question)
        await expect(group).to_have_count(1)
        await expect(group).to_contain_text(f"agent {agent_name[:10]}")
        await expect(group).to_contain_text(f"ticket #{ticket_id}")
        await editor.screenshot(path=str(test_output / "copilot-inbox.png"), full_page=True)
