"""End to end: the KB editor API on the real relay, the real action server and Rasa, a customer over Socket.IO."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from actions.answer import DID_YOU_MEAN, NOT_SURE, choice_payload
from knowledge.articles import Article
from tests.chat_client import Customer
from tests.kb_client import Editor, ask_once, make_agent, seconds_until_answer
from tests.stack import Stack

pytestmark = pytest.mark.e2e

PASSWORD = "editor-password-1"
LIVE_WITHIN_S = 10.0
GIFT_CARDS = {
    "id": "gift-cards",
    "title": "Brightwave gift cards",
    "answer": "Gift cards (v1): buy them in any Brightwave store, from 10 to 200 euros.",
    "questions": [
        "Do you sell gift cards?",
        "can I buy a Brightwave gift card for someone",
        "where do I get a gift voucher",
    ],
    "tags": ["stores"],
    "team": "support",
}


@pytest.fixture(scope="module")
async def editor(stack: Stack) -> Editor:
    await make_agent(stack.settings.db_url, "kb-editor", PASSWORD, "editor")
    return await Editor.login(stack.relay_url, "kb-editor", PASSWORD)


async def test_publish_goes_live_in_seconds_and_rollback_restores(stack: Stack, editor: Editor) -> None:
    question = GIFT_CARDS["questions"][0]
    before = await ask_once(stack.relay_url, question)
    assert before["text"] != GIFT_CARDS["answer"]

    await editor.ok("POST", "/api/kb/articles", GIFT_CARDS)
    draft = await ask_once(stack.relay_url, question)
    assert draft["text"] != GIFT_CARDS["answer"]  # a draft is never live

    try:
        published_at = time.monotonic()
        await editor.ok("POST", "/api/kb/articles/gift-cards/publish", {})
        first = await seconds_until_answer(stack.relay_url, question, GIFT_CARDS["answer"], published_at)
        print(f"\npublish to live: {first:.2f} s")
        assert first < LIVE_WITHIN_S
        # A "Did you mean" button for an article Rasa's model was never trained on still answers it.
        payload = choice_payload(Article(**{**GIFT_CARDS, "questions": ()}), known_intents=set())
        assert (await ask_once(stack.relay_url, payload))["text"] == GIFT_CARDS["answer"]

        v2 = {k: v for k, v in GIFT_CARDS.items() if k != "id"} | {"answer": "Gift cards (v2): now also online."}
        await editor.ok("PUT", "/api/kb/articles/gift-cards", v2)
        await asyncio.sleep(1.5)  # an unpublished edit must not go live, even after a revision check
        assert (await ask_once(stack.relay_url, question))["text"] == GIFT_CARDS["answer"]
        published_at = time.monotonic()
        await editor.ok("POST", "/api/kb/articles/gift-cards/publish", {})
        second = await seconds_until_answer(stack.relay_url, question, v2["answer"], published_at)
        print(f"edit to live: {second:.2f} s")
        assert second < LIVE_WITHIN_S

        rolled_at = time.monotonic()
        body = await editor.ok("POST", "/api/kb/articles/gift-cards/rollback", {"version": 1})
        assert body["article"]["latest_version"] == 3 and body["article"]["published_version"] == 3
        back = await seconds_until_answer(stack.relay_url, question, GIFT_CARDS["answer"], rolled_at)
        print(f"rollback to live: {back:.2f} s")
        assert back < LIVE_WITHIN_S

        history = await editor.ok("GET", "/api/kb/articles/gift-cards")
        assert [(v["number"], v["published"], v["note"]) for v in history["versions"]] == [
            (3, True, "rollback to v1"), (2, False, None), (1, False, None)
        ]  # fmt: skip
    finally:
        # Leave the shared stack's KB as the other end-to-end tests expect it.
        await editor.ok("POST", "/api/kb/articles/gift-cards/unpublish")


async def test_an_unanswered_question_reaches_the_inbox(stack: Stack, editor: Editor) -> None:
    question = f"Is there a discount for gamers who stream on Twitch? ({uuid.uuid4().hex[:6]})"
    reply = await ask_once(stack.relay_url, question)
    assert reply["text"] in (NOT_SURE, DID_YOU_MEAN)

    deadline = time.monotonic() + 10
    group = None
    while group is None and time.monotonic() < deadline:
        inbox = await editor.ok("GET", "/api/kb/inbox")
        group = next((g for g in inbox["groups"] if question in [q["text"] for q in g["questions"]]), None)
        await asyncio.sleep(0.3)
    assert group is not None, "the unanswered question never reached the inbox"
    ids = [q["id"] for q in group["questions"] if q["text"] == question]

    body = await editor.ok(
        "POST",
        "/api/kb/inbox/new-article",
        {"question_ids": ids, "id": "gamer-discounts", "title": "Discounts for gamers", "answer": "We have none yet."},
    )
    assert question in body["article"]["questions"] and body["article"]["status"] == "draft"
    inbox = await editor.ok("GET", "/api/kb/inbox")
    assert all(question not in [q["text"] for q in g["questions"]] for g in inbox["groups"])


async def test_escalations_reach_the_inbox_but_clicks_do_not(stack: Stack, editor: Editor) -> None:
    # Fixed texts, asked nowhere else in the suite: a random suffix changed what the bot decided (with one, the
    # first was answered about once in 75 runs), and the questions are found in the inbox by their exact text.
    first, second = "can I pay my bill in bitcoin or dogecoin", "how many llamas live in Peru"
    customer = Customer(stack.relay_url)
    await customer.connect()
    try:
        assert (await customer.ask(first))["text"] in (NOT_SURE, DID_YOU_MEAN)
        await customer.ask(second)  # a second unsure turn in a row: handed over to a person (low_confidence)
        await customer.say("/human")  # a quick-reply click is not a question: never stored
    finally:
        await customer.close()
    reasons: dict[str, list[str]] = {}
    deadline = time.monotonic() + 10
    while len(reasons) < 2 and time.monotonic() < deadline:
        inbox = await editor.ok("GET", "/api/kb/inbox")
        reasons = {
            q["text"]: g["reasons"] for g in inbox["groups"] for q in g["questions"] if q["text"] in (first, second)
        }
        await asyncio.sleep(0.3)
    assert set(reasons) == {first, second}
    assert "low_confidence" in reasons[second]
    inbox = await editor.ok("GET", "/api/kb/inbox")
    assert all(q["text"] != "/human" for g in inbox["groups"] for q in g["questions"])
    ids = [q["id"] for g in inbox["groups"] for q in g["questions"] if q["text"] in (first, second)]
    await editor.ok("POST", "/api/kb/inbox/dismiss", {"question_ids": ids})


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (
            {
                "format": "csv",
                "content": "id,title,answer,questions\nnew-one,New one,ok,q\nstore-locations,Stores,,q\n",
            },
            "row 3 (store-locations): answer is empty",
        ),
        (
            {
                "format": "csv",
                "content": "id,title,answer,questions\nnew-one,Brightwave gift cards,ok,q\nnew-two,brightwave GIFT cards,ok,q\n",
            },
            "row 3 (new-two): duplicate title",
        ),
        ({"format": "csv", "content": "id,name,answer,questions\nx,X,ok,q\n"}, "row 1 (header)"),
        (
            {
                "format": "yaml",
                "content": "articles:\n- {id: bad-import-probe, title: reset your ACCOUNT password, answer: x, questions: [q]}\n",
            },
            "already has the title",
        ),
    ],
)
async def test_a_bad_import_changes_nothing(stack: Stack, editor: Editor, upload: dict[str, str], message: str) -> None:
    before = await editor.ok("GET", "/api/kb/export?format=yaml&drafts=1")
    revision = (await editor.ok("GET", "/api/kb/revision"))["revision"]
    status, body = await editor.call("POST", "/api/kb/import", upload)
    assert status in (400, 409) and message in body["error"]["message"], body
    assert await editor.ok("GET", "/api/kb/export?format=yaml&drafts=1") == before
    assert (await editor.ok("GET", "/api/kb/revision"))["revision"] == revision


async def test_import_as_drafts_and_export(stack: Stack, editor: Editor) -> None:
    content = 'id,title,answer,questions,tags\nholiday-hours,Holiday opening hours,"Stores close at 4pm on Dec 24.","are you open on christmas eve\nholiday hours",stores\n'
    body = await editor.ok("POST", "/api/kb/import", {"format": "csv", "content": content, "publish": False})
    assert body["created"] == ["holiday-hours"] and not body["published"]
    drafts = await editor.ok("GET", "/api/kb/export?format=csv&drafts=1")
    live = await editor.ok("GET", "/api/kb/export?format=csv")
    assert "holiday-hours" in drafts and "holiday-hours" not in live
    found = await editor.ok("GET", "/api/kb/articles?q=christmas")
    assert [a["id"] for a in found["articles"]] == ["holiday-hours"]


async def test_the_api_needs_an_editor(stack: Stack, editor: Editor) -> None:
    await make_agent(stack.settings.db_url, "kb-agent", PASSWORD, "agent")
    agent = await Editor.login(stack.relay_url, "kb-agent", PASSWORD)
    status, body = await editor.call("GET", "/api/kb/articles", auth=False)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await editor.call("GET", "/api/kb/articles", token="not-a-token")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await agent.call("POST", "/api/kb/articles/view-bill/publish", {})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await editor.call("POST", "/api/kb/articles", {"id": "x"})
    assert status == 400 and body["error"]["code"] == "invalid_payload"
    status, body = await editor.call("GET", "/api/kb/articles/no-such-article")
    assert status == 404 and body["error"]["code"] == "not_found"
    listed = await editor.ok("GET", "/api/kb/articles?status=published")
    assert len(listed["articles"]) >= 32
