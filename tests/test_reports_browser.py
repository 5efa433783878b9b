"""The Reports page in Chromium after scripted conversations through the real relay, Rasa and action server.

Five customers: A gets the password answer and says yes, ends the chat and rates it 5; B gets the same answer, says
no (a person is offered; B does not take it), ends the chat and rates it 2; C asks for a person, Ann answers and
resolves, C rates 4; D asks for a person, Ann answers and transfers to Bob, Bob answers and resolves, D rates 3;
E opens the chat and never writes. Known figures: 4 conversations, deflection 25.0 % (only A), 2 escalations
(customer_asked), CSAT bot-only 50.0 % (2 of 2 bot-only chats rated), escalated 100.0 %, transferred 0.0 %, the
transferred side flagged in the handoff health panel, the password article answered twice (1 yes, 1 no). Second
ratings are refused and the first ones stand. Durations are real, so the page is checked against the API for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import delete, update

from actions.feedback import FEEDBACK_NO, FEEDBACK_YES, NO_TITLE, SORRY, THANKS, YES_TITLE
from common.db import create_engine, session_factory
from handoff.auth import create_agent
from handoff.models import Agent, ChatRating, Conversation, KbAnswer, Message, Ticket, TicketSegment
from knowledge.articles import KnowledgeBase
from tests.agent_client import AgentClient, login
from tests.browser import chromium
from tests.chat_client import Customer
from tests.stack import Stack, free_port, settings_env
from warmline.processes import services

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "reports test password"
QUESTION = "I forgot my password, how can I reset it?"
# Scripted waits, so the durations are known to within the relay's own few milliseconds.
SEAT_WAIT_S = 1.0  # a customer waits this long for Ann
FIRST_SEGMENT_S = 0.5  # Ann's stretch on each ticket
AFTER_TRANSFER_S = 1.5  # Bob's stretch after the transfer: handle time after a transfer is three times the first


@pytest.fixture(scope="module")
async def people(stack: Stack) -> AsyncIterator[dict[str, Any]]:
    """An admin and two agents (no team: the default team, support); earlier modules' chats are removed from this
    test database so the report holds exactly this module's conversations."""
    engine = create_engine(stack.settings.db_url)
    ids = {}
    async with session_factory(engine)() as s, s.begin():
        for table in (ChatRating, KbAnswer, TicketSegment, Ticket, Message, Conversation):
            await s.execute(delete(table))
        await s.execute(update(Agent).values(presence="offline"))
        for username, name, role in (
            ("rep-root", "Root", "admin"),
            ("rep-ann", "Ann", "agent"),
            ("rep-bob", "Bob", "agent"),
        ):
            ids[username] = (await create_agent(s, username, name, PASSWORD, role)).id
    await engine.dispose()
    people: dict[str, Any] = {}
    for username, agent_id in ids.items():
        status, body = await login(stack.relay_url, username, PASSWORD)
        assert status == 200
        people[username] = {"id": agent_id, "token": body["token"]}
    yield people


async def until_reply(customer: Customer, text: str) -> dict[str, Any]:
    while True:
        reply = await customer.next_reply()
        if reply.get("text") == text:
            return reply


async def kb_chat(url: str, demo_kb: KnowledgeBase, helpful: bool, score: int) -> str:
    """A bot-only chat: the password answer, a yes or a no to it, the chat ended and rated."""
    customer = Customer(url)
    await customer.connect()
    try:
        article = demo_kb.by_id("reset-password")
        assert article is not None
        answer = await customer.ask(QUESTION)
        assert answer["text"] == article.answer
        buttons = {b["title"]: b["payload"] for b in answer.get("quick_replies") or []}
        assert set(buttons) == {YES_TITLE, NO_TITLE}
        assert buttons[YES_TITLE].startswith(f"/{FEEDBACK_YES}") and buttons[NO_TITLE].startswith(f"/{FEEDBACK_NO}")
        reply = await customer.ask(buttons[YES_TITLE if helpful else NO_TITLE])
        assert reply["text"] == (THANKS if helpful else SORRY)
        if not helpful:
            assert [b["payload"] for b in reply["quick_replies"]] == ["/human"]  # a person is offered
        ended = await customer.sio.call("end_chat", {}, timeout=10)
        assert ended == {"ok": True, "rating_requested": True}
        request = await customer.next_event("rating_request")
        assert (request["ticket_id"], request["scope"], request["because"]) == (None, "chat", "ended")
        assert (await customer.sio.call("chat_rating", {"score": score}, timeout=10)) == {"ok": True}
        again = await customer.sio.call("chat_rating", {"score": 1}, timeout=10)
        assert again["ok"] is False and again["error"]["code"] == "already_rated"
        assert (await customer.sio.call("end_chat", {}, timeout=10))["rating_requested"] is False  # asked once
        assert customer.session_id is not None
        return customer.session_id
    finally:
        await customer.close()


async def escalated_chat(url: str, ann: AgentClient, bob: AgentClient | None, bob_id: int, score: int) -> None:
    customer = Customer(url)
    session_id = await customer.connect()
    try:
        await customer.say("/human")
        waiting = await ann.wait_for_ticket(session_id)
        ticket_id = waiting["ticket_id"]
        await asyncio.sleep(SEAT_WAIT_S)
        assert (await ann.call("accept", {"ticket_id": ticket_id}))["ok"]
        await ann.call(
            "agent_message", {"ticket_id": ticket_id, "text": "Hi, Ann here.", "client_id": f"ann-{ticket_id}"}
        )
        closer = ann
        await asyncio.sleep(FIRST_SEGMENT_S)
        if bob is not None:
            moved = await ann.call("transfer", {"ticket_id": ticket_id, "to_agent_id": bob_id, "note": "Needs Bob"})
            assert moved["ok"], moved
            await bob.next("chat_assigned")
            await bob.call(
                "agent_message", {"ticket_id": ticket_id, "text": "Bob here.", "client_id": f"bob-{ticket_id}"}
            )
            await asyncio.sleep(AFTER_TRANSFER_S)
            closer = bob
        assert (await closer.call("resolve", {"ticket_id": ticket_id}))["ok"]
        request = await customer.next_event("rating_request")
        assert request["ticket_id"] == ticket_id
        assert (await customer.sio.call("rating", {"ticket_id": ticket_id, "score": score}, timeout=10))["ok"]
        again = await customer.sio.call("rating", {"ticket_id": ticket_id, "score": 1}, timeout=10)
        assert again["ok"] is False  # the first rating stands
    finally:
        await customer.close()


async def api_report(url: str, token: str, team: str | None = None) -> dict[str, Any]:
    params = {"days": "30"} | ({"team": team} if team else {})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/reports", params=params, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def figure(page: Page, key: str) -> str:
    return (await page.locator(f'[data-figure="{key}"]').inner_text()).strip()


def secs(x: float | None) -> str:
    """As the page writes seconds (reports.js)."""
    return "–" if x is None else (f"{x:.3f} s" if x < 1 else f"{x:.1f} s")


async def log_in(page: Page, url: str, username: str) -> None:
    await page.goto(f"{url}/reports")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("body[data-loaded]", state="attached")


async def test_the_reports_page_shows_the_known_figures(
    stack: Stack, people: dict[str, Any], demo_kb: KnowledgeBase, test_output: Path
) -> None:
    url = stack.relay_url
    ann, bob = AgentClient(url), AgentClient(url)
    await ann.connect(people["rep-ann"]["token"])
    await bob.connect(people["rep-bob"]["token"])
    try:
        await kb_chat(url, demo_kb, helpful=True, score=5)
        await kb_chat(url, demo_kb, helpful=False, score=2)
        await escalated_chat(url, ann, None, people["rep-bob"]["id"], score=4)
        await escalated_chat(url, ann, bob, people["rep-bob"]["id"], score=3)
        silent = Customer(url)
        await silent.connect()  # opens the chat, never writes: not a conversation
        await silent.close()
    finally:
        await ann.close()
        await bob.close()
    await asyncio.sleep(0.5)  # the action server stores KB answers in the background

    api = (await api_report(url, people["rep-root"]["token"]))["report"]
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1400, "height": 2200})
        await log_in(page, url, "rep-root")
        assert await figure(page, "conversations") == "4"
        assert await figure(page, "deflection_rate") == "25.0 %"
        assert await figure(page, "escalations") == "2"
        assert await figure(page, "csat_bot_only") == "50.0 %"
        assert await figure(page, "csat_escalated") == "100.0 %"
        assert await figure(page, "csat_transferred") == "0.0 %"
        assert "2 ratings of 2" in await page.locator('[data-figure="csat_bot_only"] + small').inner_text()
        # Real durations: what the page shows is what the API measured, and they are plausible for this script.
        assert await figure(page, "time_to_seat_p50") == secs(api["handoff"]["time_to_seat"]["p50_s"])
        assert await figure(page, "first_response_p50") == secs(api["handoff"]["first_response"]["p50_s"])
        assert await figure(page, "handle_after_transfer_mean") == secs(
            api["handoff"]["transfer"]["after_transfer"]["mean_s"]
        )
        assert (
            api["handoff"]["time_to_seat"]["count"] == 2 and api["handoff"]["transfer"]["after_transfer"]["count"] == 1
        )
        assert 0 < api["handoff"]["time_to_seat"]["p90_s"] < 30

        # Handoff health: escalated chats are not worse than bot-only ones; transferred ones are, by 50 points.
        escalated = page.locator('[data-check="csat_escalated"]')
        transferred = page.locator('[data-check="csat_transferred"]')
        await expect(escalated).to_have_attribute("data-flagged", "false")
        await expect(transferred).to_have_attribute("data-flagged", "true")
        assert await transferred.locator('[data-side="baseline"]').inner_text() == "50.0 %"
        assert await transferred.locator('[data-side="handoff"]').inner_text() == "0.0 %"
        assert (await transferred.locator(".check__verdict").inner_text()).startswith("Worse by 50.0 pts")
        await expect(page.locator('[data-check="handle_time"]')).to_have_attribute("data-flagged", "true")

        reasons = page.locator('[data-table="reasons"] tbody tr')
        assert await reasons.all_inner_texts() == ["customer_asked\t2"]
        articles = page.locator('[data-table="articles"] tbody tr')
        assert await articles.all_inner_texts() == ["reset-password\t2\t1\t1\t0"]
        agents = await page.locator('[data-table="agents"] tbody tr td:first-child').all_inner_texts()
        assert agents == ["Ann", "Bob"]
        await page.screenshot(path=str(test_output / "reports-admin.png"), full_page=True)

        async with page.expect_download() as download:
            await page.click('[data-csv="reasons"]')
        saved = await (await download.value).path()
        assert await asyncio.to_thread(Path(saved).read_bytes) == b"reason,escalations\r\ncustomer_asked,2\r\n"

        # An agent sees their own team only (Ann works the default team, support).
        agent_page = await browser.new_page(viewport={"width": 1400, "height": 2200})
        await log_in(agent_page, url, "rep-ann")
        assert await agent_page.locator("#team option").all_inner_texts() == ["support"]
        assert await figure(agent_page, "escalations") == "2"
        await agent_page.screenshot(path=str(test_output / "reports-agent.png"), full_page=True)

    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {people['rep-ann']['token']}"}
        async with http.get(f"{url}/api/reports", params={"team": "billing"}, headers=headers) as r:
            assert r.status == 403
        async with http.get(f"{url}/api/admin/reports/handle-time", headers=headers) as r:
            assert r.status == 403  # the Admin tab's summary is for admins
        headers = {"Authorization": f"Bearer {people['rep-root']['token']}"}
        async with http.get(f"{url}/api/admin/reports/handle-time", headers=headers) as r:
            summary = await r.json()
    assert (summary["segments"], summary["tickets"], summary["transferred_tickets"]) == (3, 2, 1)
    assert summary["agents"]["Bob"]["avg_after_transfer_s"] >= AFTER_TRANSFER_S


async def test_a_quiet_bot_only_chat_is_asked_for_a_rating_once(stack: Stack, demo_kb: KnowledgeBase) -> None:
    """A relay with a 2 s idle time: the chat goes quiet after the bot's answer and is asked (because idle), once."""
    settings = stack.settings.model_copy(update={"relay_port": free_port()})
    env = settings_env(settings) | {"WARMLINE_CHAT_RATING_IDLE_S": "2"}
    relay = next(s for s in services(settings, stack.model, env) if s.name == "relay")
    stack.supervisor.start(relay)
    customer = Customer(settings.relay_url)
    await customer.connect()
    try:
        article = demo_kb.by_id("reset-password")
        assert article is not None
        assert (await customer.ask(QUESTION))["text"] == article.answer
        request = await customer.next_event("rating_request", timeout=15)
        assert (request["ticket_id"], request["scope"], request["because"]) == (None, "chat", "idle")
        assert (await customer.sio.call("chat_rating", {"score": 4}, timeout=10)) == {"ok": True}
        with pytest.raises(asyncio.TimeoutError):  # asked once: the next sweeps leave it alone
            await customer.next_event("rating_request", timeout=4)
        assert (await customer.sio.call("end_chat", {}, timeout=10))["rating_requested"] is False
    finally:
        await customer.close()
