"""The KB editor page in headless Chromium against the real stack: log in, edit, publish, work the inbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser import chromium
from tests.kb_client import Editor, ask_once, make_agent
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

XSS = "<img src=x onerror=alert(1)>"
PASSWORD = "browser-editor-1"


async def test_editor_page_edits_publishes_and_works_the_inbox(stack: Stack, test_output: Path) -> None:
    await make_agent(stack.settings.db_url, "page-editor", PASSWORD, "editor")
    question = f"{XSS} do you rent out fishing boats"
    await ask_once(stack.relay_url, question)  # unanswered: lands in the inbox
    async with chromium() as browser:
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        await page.goto(stack.relay_url + "/editor")
        await page.fill("#username", "page-editor")
        await page.fill("#password", PASSWORD)
        await page.click("#login-form button")
        await expect(page.locator("#app")).to_be_visible()

        await page.fill("#search", "forgot my password")
        await expect(page.locator("#article-list li")).to_have_count(1)
        await page.click("#article-list li")
        await expect(page.locator("#f-title")).to_have_value("Reset your account password")
        await expect(page.locator("#versions li")).to_have_count(1)

        await page.click("#new-article")
        await page.fill("#f-id", "boat-rental")
        await page.fill("#f-title", f"Boat rental {XSS}")
        await page.fill("#f-answer", "We do not rent boats.")
        await page.fill("#f-questions", "do you rent boats\ncan I hire a boat")
        await page.click("#save")
        await expect(page.locator("#article-status")).to_have_text("draft v1")
        await page.click("#publish")
        await expect(page.locator("#article-status")).to_have_text("published v1")
        await page.screenshot(path=str(test_output / "editor.png"), full_page=True)

        await page.click("[data-tab=inbox]")
        group = page.locator("#groups > li").filter(has_text="fishing boats")
        await expect(group).to_have_count(1)
        await page.screenshot(path=str(test_output / "editor-inbox.png"), full_page=True)
        await group.locator("select").select_option("boat-rental")
        await group.locator("button", has_text="Add as example questions").click()
        await expect(page.locator("#app-notice")).to_contain_text("Added to Boat rental")
        await expect(page.locator("#groups > li").filter(has_text="fishing boats")).to_have_count(0)

        assert await page.locator("img").count() == 0 and dialogs == []
    editor = await Editor.login(stack.relay_url, "page-editor", PASSWORD)
    article = (await editor.ok("GET", "/api/kb/articles/boat-rental"))["article"]
    assert question in article["questions"] and article["latest_version"] == 2 and article["published_version"] == 1
    await editor.ok("POST", "/api/kb/articles/boat-rental/unpublish")  # leave the shared stack's KB as it was
