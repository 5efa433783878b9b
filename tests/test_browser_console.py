"""The agent console in headless Chromium: a customer page and two agent consoles (separate browser contexts) go
through escalation, the offer, accept, typing, read receipts, a canned response, KB search, a transfer with a note,
resolve and the rating; HTML in messages stays text. Screenshots of the main screens land in test-output/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect
from sqlalchemy import update

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.models import Agent, CannedResponse, Conversation, Ticket
from knowledge.articles import KnowledgeBase
from tests.browser import chromium, open_chat, stale_event_replayer
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

XSS = "<img src=x onerror=alert(1)>"
PASSWORD = "console-browser-password"


async def send(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def console(
    browser: Browser, url: str, username: str, dialogs: list[str], route: Callable[[WebSocketRoute], None] | None = None
) -> Page:
    page = await (await browser.new_context()).new_page()
    if route is not None:
        await page.route_web_socket("**/socket.io/**", route)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    await page.goto(url + "/agent")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#conn")).to_have_text("online")
    return page


async def test_nobody_online_the_customer_leaves_an_email(stack: Stack, test_output: Path) -> None:
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        await s.execute(update(Agent).values(presence="offline"))  # as if every agent had logged off
    await engine.dispose()
    async with chromium() as browser:
        customer = await (await browser.new_context()).new_page()
        await open_chat(customer, stack.relay_url + "/")
        await send(customer, "talk to a person please")
        await expect(customer.locator("#queue-status")).to_have_text("No one is online right now.")
        await expect(customer.locator(".msg--system").filter(has_text="Leave your email")).to_have_count(1)
        await customer.fill(".email-form input", "sam@example.com")
        await customer.screenshot(path=str(test_output / "chat-no-agents.png"), full_page=True)
        await customer.click(".email-form button")
        await expect(customer.locator(".msg--system").last).to_contain_text("We'll write to sam@example.com")
        await expect(customer.locator(".email-form")).to_have_count(0)
        session_id = await customer.evaluate("localStorage.getItem('warmline.session_id')")
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        conversation = await s.get(Conversation, session_id)
        assert conversation is not None and conversation.customer["email"] == "sam@example.com"
        assert conversation.status == "queued"  # the ticket stays open for a follow-up
        await s.execute(update(Ticket).where(Ticket.status != "resolved").values(status="resolved"))  # tidy up
        await s.execute(update(Conversation).where(Conversation.id == session_id).values(status="bot"))
    await engine.dispose()


async def test_console_escalation_transfer_and_rating(stack: Stack, demo_kb: KnowledgeBase, test_output: Path) -> None:
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        # Tickets other tests left waiting would be offered first: start from an empty queue.
        await s.execute(update(Ticket).where(Ticket.status != "resolved").values(status="resolved"))
        await s.execute(update(Conversation).where(Conversation.status != "bot").values(status="bot"))
        await create_agent(s, "gina", "Gina", PASSWORD)
        hal = await create_agent(s, "hal", "Hal", PASSWORD)
        await create_agent(s, "boss", "Boss", PASSWORD, role="admin")
        s.add(
            CannedResponse(
                shortcut="thanks",
                title="Thanks and intro",
                body="Thanks {{customer.name}}, {{agent.name}} here (ticket {{ticket.id}}).",
            )
        )
    await engine.dispose()
    article = demo_kb.by_id("reset-password")
    assert article is not None
    dialogs: list[str] = []
    async with chromium() as browser:
        ada = await console(browser, stack.relay_url, "gina", dialogs)
        # Hal's console also gets the queue's last ticket_waiting again right after the ticket_taken: a queue event
        # read before the take, sent after it (another task or relay process). The ticket must not come back.
        replayed: list[str] = []
        stale = stale_event_replayer('"ticket_taken"', ("ticket_waiting", "ticket_offered"), replayed)
        hal_page = await console(browser, stack.relay_url, "hal", dialogs, stale)
        customer = await (await browser.new_context()).new_page()
        customer.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        await open_chat(customer, stack.relay_url + "/")

        # Escalation: the customer sees their place and wait; Gina (least loaded, lowest id) gets the offer.
        await send(customer, "talk to a person please")
        await expect(customer.locator(".msg--system").last).to_contain_text("next")
        await expect(customer.locator("#queue-status")).to_contain_text("You're next")
        await expect(ada.locator("#queue li.offered")).to_have_count(1)
        await expect(ada.locator("#queue-count")).to_have_text("1")
        assert int(await ada.evaluate("document.body.dataset.chimes || '0'")) >= 1  # the arrival sound played
        await expect(ada).to_have_title("(1) Warmline console")
        await expect(hal_page.locator("#queue li")).to_have_count(1)  # Hal sees the queue, not the offer
        await expect(hal_page.locator("#queue li.offered")).to_have_count(0)
        await ada.screenshot(path=str(test_output / "console-queue.png"), full_page=True)

        await ada.locator("#queue .accept").first.click()
        await expect(ada.locator("#card .reason")).to_contain_text("asked for a person")
        await expect(ada.locator("#record")).to_contain_text("ticket(s)")
        await expect(customer.locator(".msg--system").last).to_have_text("Gina joined the chat.")
        await expect(customer.locator("#queue-status")).to_be_hidden()
        await expect(hal_page.locator("#queue li")).to_have_count(0)
        assert len(replayed) == 1
        for _ in range(5):  # the replayed frame follows the take at once; it must leave the queue empty
            await hal_page.wait_for_timeout(100)
            assert await hal_page.locator("#queue li").count() == 0

        # Typing, both ways.
        await customer.locator("#text").press_sequentially("hel")
        await expect(ada.locator("#typing")).to_be_visible()
        await ada.locator("#reply").press_sequentially("/than")
        await expect(customer.locator("#typing")).to_have_text("Gina is typing…")

        # A canned response found with "/", variables filled in, sent.
        await expect(ada.locator("#canned-list button")).to_have_count(1)
        await ada.locator("#canned-list button").first.click()
        ticket_text = await ada.input_value("#reply")
        assert ticket_text.startswith("Thanks there, Gina here (ticket ")
        await ada.press("#reply", "Enter")
        await expect(customer.locator(".msg--agent .msg__text").last).to_have_text(ticket_text)
        await expect(customer.locator("#typing")).to_be_hidden()
        # Read receipts: the customer's page saw it, so Gina's message shows "Seen".
        await expect(ada.locator("#transcript .msg--agent .msg__seen").last).to_have_text("Seen")

        # HTML in a message is text, both ways; Gina's open console marks it read for the customer.
        await send(customer, XSS)
        await expect(ada.locator("#transcript .msg--customer .msg__text").last).to_have_text(XSS)
        await expect(customer.locator(".msg--customer .msg__seen").last).to_have_text("Seen")
        await ada.fill("#reply", XSS)
        await ada.press("#reply", "Enter")
        await expect(customer.locator(".msg--agent .msg__text").last).to_have_text(XSS)
        assert await customer.locator(".messages img").count() == 0
        assert await ada.locator("#transcript img").count() == 0

        # KB search: one click puts the article's answer in the composer.
        await ada.fill("#kb-query", "reset my password")
        await ada.press("#kb-query", "Enter")
        await expect(ada.locator("#kb-results li").first).to_contain_text(article.title)
        await ada.locator("#kb-results .kb-insert").first.click()
        assert await ada.input_value("#reply") == article.answer
        await ada.screenshot(path=str(test_output / "console-chat.png"), full_page=True)
        await ada.fill("#reply", "")

        # Transfer to Hal with a note: he gets the whole history, the customer sees who joined, Gina leaves.
        await ada.click("#transfer")
        await ada.select_option("#transfer-target", f"agent:{hal.id}")
        await ada.fill("#transfer-note", "Wants a person for the password; please verify identity")
        await ada.screenshot(path=str(test_output / "console-transfer-dialog.png"))
        await ada.click("#transfer-submit")
        await expect(ada.locator("#chat")).to_be_hidden()
        await expect(ada.locator("#chats li")).to_have_count(0)
        await expect(customer.locator(".msg--system").last).to_have_text("Hal joined the chat.")
        await expect(customer.locator(".msg--system").filter(has_text="Gina transferred you to Hal.")).to_have_count(1)
        await expect(hal_page.locator("#chats li")).to_have_count(1)
        await expect(hal_page.locator("#transcript")).to_contain_text("talk to a person please")  # the bot phase
        await expect(hal_page.locator("#transcript .msg--agent").first).to_contain_text(ticket_text)  # Gina's
        await expect(hal_page.locator("#transcript .msg--note")).to_contain_text("please verify identity")
        assert await customer.locator(".msg").filter(has_text="verify identity").count() == 0  # notes stay internal
        await hal_page.screenshot(path=str(test_output / "console-after-transfer.png"), full_page=True)

        await hal_page.fill("#reply", "Hal here, sorted!")
        await hal_page.press("#reply", "Enter")
        await expect(customer.locator(".msg--agent").last).to_contain_text("Hal here, sorted!")
        await hal_page.click("#resolve")
        await expect(customer.locator(".rating")).to_be_visible()
        await customer.locator(".rating button", has_text="5").click()
        await expect(customer.locator(".rating")).to_have_text("Thanks for your feedback!")
        await customer.screenshot(path=str(test_output / "chat-after-console.png"), full_page=True)

        # The admin screen.
        boss = await console(browser, stack.relay_url, "boss", dialogs)
        await boss.click("#admin-tab")
        await expect(boss.locator("#admin-agents")).to_contain_text("gina")
        await expect(boss.locator("#admin-canned")).to_contain_text("/thanks")
        await expect(boss.locator("#admin-report")).to_contain_text("Hal")  # handle time, incl. after the transfer
        await boss.screenshot(path=str(test_output / "console-admin.png"), full_page=True)
    assert dialogs == []  # no script from any message ever ran
