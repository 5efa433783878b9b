"""The copilot's handlers (handoff/copilot.py) through the recording fakes of Socket.IO and the bot
(tests/fakes.py) over a real SQLite file, with the action server's real live KB in process (actions/kb_service.py
and actions/suggest.py's ranking, the same code the relay reaches over HTTP): suggestions for the seated agent only,
asked for the chat on screen, once per message; with accept and transfer; inserts and what was sent; reloads; save
to the KB; a publish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from actions.kb_service import KBService
from actions.suggest import RankBatcher, suggest
from common.settings import Settings
from handoff import copilot, events, tickets
from handoff.auth import create_agent
from handoff.conversation import agent_room
from handoff.copilot import Copilot, Ranking
from handoff.customer import HUMAN_PAYLOAD
from handoff.models import CannedResponse, CopilotSaved, CopilotUse, Message
from knowledge import store
from knowledge.models import UnansweredQuestion
from knowledge.retrieval import Scored
from knowledge.suggest_wire import SuggestRequest
from tests.fakes import RecordingSio, ScriptedBot
from tests.handler_harness import wire

C, A = events.CUSTOMER_NAMESPACE, events.AGENT_NAMESPACE
CARD = {"custom": {"handoff": {"reason": "customer_asked", "reason_text": "The customer asked for a person."}}}
SESSION = "sess-copilot-1"


class LiveKBSource:
    """The action server's ranking (actions/suggest.py) over its live KB, called in process instead of over HTTP."""

    def __init__(self, service: KBService) -> None:
        self.service = service
        self.batcher = RankBatcher(service)
        self.asked: list[str] = []

    async def rank(self, text: str, k: int, chat: int | None = None) -> Ranking | None:
        self.asked.append(text)
        answer = await suggest(self.batcher, SuggestRequest(text=text, k=k))
        return copilot.ranking_of(answer)


@dataclass
class Relay:
    sio: RecordingSio
    bot: ScriptedBot
    copilot: Copilot
    service: KBService
    source: LiveKBSource
    sessions: object

    async def say(self, text: str) -> dict:
        ack = await self.sio.call(C, "user_uttered", "c1", {"message": text})
        await self.copilot.settled()
        return ack

    async def ask(self, ticket_id: int, message_id: int | None = None, sid: str = "a1") -> dict:
        """What the console sends for the chat on its screen: a customer message as it arrives, or (None) the
        chat's last unanswered question when it opens."""
        ask = {"ticket_id": ticket_id} | ({"message_id": message_id} if message_id else {})
        return await self.sio.call(A, "suggest", sid, ask)

    async def say_and_see(self, ticket_id: int, text: str) -> dict:
        """The customer writes into the chat on the agent's screen: the set the console then shows."""
        ack = await self.say(text)
        asked = await self.ask(ticket_id, ack["message_id"])
        assert asked["ok"] and asked["suggestions"], asked
        return asked["suggestions"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    settings = Settings(state_dir=tmp_path, DATABASE_URL=None)
    wired = wire(settings.db_url)
    service = KBService(settings, fine_tune=False)
    await service.start()
    source = LiveKBSource(service)
    helper = Copilot(wired.sio, wired.outbox, wired.sessions, wired.writer, source)
    helper.register()
    wired.customer.copilot = wired.agent.copilot = wired.console.copilot = helper
    relay = Relay(wired.sio, wired.bot, helper, service, source, wired.sessions)
    await wired.sio.call(C, "session_request", "c1", {"session_id": SESSION, "customData": {"name": "Ana"}})
    yield relay
    await helper.settled()
    await wired.close()
    await service.stop()


async def seat(relay: Relay, sid: str, username: str) -> int:
    async with relay.sessions() as s, s.begin():  # type: ignore[operator]
        agent = await create_agent(s, username, username.title(), "correct horse battery")
    await relay.sio.save_session(sid, {"agent_id": agent.id, "name": agent.name, "role": agent.role}, namespace=A)
    await relay.sio.enter_room(sid, agent_room(agent.id), namespace=A)
    return agent.id


async def escalated(relay: Relay, question: str = "I forgot my password and cannot log in") -> int:
    relay.bot.replies.append([{"text": "Hmm."}])
    await relay.say(question)
    relay.bot.replies.append([{"text": "Let me find a person."}, CARD])
    await relay.say(HUMAN_PAYLOAD)
    async with relay.sessions() as s:  # type: ignore[operator]
        ticket = await tickets.open_ticket_of(s, SESSION)
    assert ticket is not None
    return ticket.id


async def accepted(relay: Relay) -> tuple[int, int, dict]:
    ticket_id = await escalated(relay)
    ada = await seat(relay, "a1", "ada")
    ack = await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    assert ack["ok"]
    await relay.copilot.settled()
    return ticket_id, ada, ack


async def test_accept_brings_the_suggestions_for_the_last_unanswered_question(relay: Relay) -> None:
    ticket_id, ada, ack = await accepted(relay)
    assert "suggestions" not in ack  # accept does not wait for the ranking; the event follows at once
    (event,) = relay.sio.sent("suggestions")
    assert event.namespace == A and event.to == agent_room(ada)
    handed = event.data
    assert handed["context"] == "handoff" and handed["ticket_id"] == ticket_id
    assert handed["question"] == "I forgot my password and cannot log in"  # not "/human"
    assert handed["articles"][0]["article_id"] == "reset-password"
    assert 1 <= len(handed["articles"]) <= 3
    assert all(a["confidence"] >= copilot.FLOOR for a in handed["articles"])


async def test_a_human_phase_message_on_screen_gets_suggestions_for_the_seated_agent_only_once_asked(
    relay: Relay,
) -> None:
    ticket_id, ada, _ = await accepted(relay)
    async with relay.sessions() as s, s.begin():  # type: ignore[operator]
        s.add(
            CannedResponse(
                shortcut="bill", title="Where to find your bill", body="Hi {{customer.name}}, bills are under Billing."
            )
        )
    relay.copilot.forget_context()  # written straight to the database: what the admin API's edit does after it
    relay.sio.clear()
    relay.source.asked.clear()
    before = list(relay.bot.sent)
    ack = await relay.say("where can I download my bill as a pdf")
    assert ack["ok"] and [e.event for e in relay.sio.emitted if e.namespace == A] == ["chat_message"]
    assert relay.source.asked == []  # nothing is ranked until the agent's console asks
    asked = await relay.ask(ticket_id, ack["message_id"])
    shown = asked["suggestions"]
    assert asked["ok"] and shown["message_id"] == ack["message_id"] and shown["context"] == "message"
    assert shown["articles"][0]["article_id"] == "view-bill"
    assert shown["articles"][0]["excerpt"] and shown["articles"][0]["text"]
    assert [c["text"] for c in shown["canned"]] == ["Hi Ana, bills are under Billing."]
    assert ticket_id == shown["ticket_id"]
    # Asked again (another tab, a reload): the same set, ranked once; stored as shown.
    again = await relay.ask(ticket_id, ack["message_id"])
    await relay.copilot.settled()
    assert again["suggestions"] == shown and relay.source.asked == ["where can I download my bill as a pdf"]
    stored = await relay.sio.call(A, "suggestions_of", "a1", {"ticket_id": ticket_id})
    assert [x["suggestion_id"] for x in stored["suggestions"] if x["message_id"] == ack["message_id"]] == [
        shown["suggestion_id"]
    ]
    # Opening the chat asks for its last unanswered question: that same message, the same set.
    assert (await relay.ask(ticket_id))["suggestions"]["suggestion_id"] == shown["suggestion_id"]
    # Nobody else gets them: not an agent who is not seated in the chat, not for a message that is not the
    # customer's; the customer never sees a suggestion, and Rasa is not even asked to read the message (the turn
    # that handed the chat over told this socket the chat is with a person).
    await seat(relay, "b1", "bea")
    refused = await relay.ask(ticket_id, ack["message_id"], sid="b1")
    assert not refused["ok"] and refused["error"]["code"] == "not_your_ticket"
    said = await relay.sio.call(A, "agent_message", "a1", {"ticket_id": ticket_id, "text": "Under Billing."})
    wrong = await relay.ask(ticket_id, said["message_id"])
    assert not wrong["ok"] and wrong["error"]["code"] == "invalid_payload"
    assert (await relay.ask(ticket_id))["suggestions"] is None  # the agent spoke last: nothing is unanswered
    assert [e for e in relay.sio.emitted if e.namespace == C and e.event != "bot_uttered"] == []
    assert relay.bot.sent[len(before) :] == []
    assert relay.sio.sent("suggestions") == []  # asked ones come in the acknowledgement only
    assert ada


async def test_nothing_is_suggested_while_queued_or_for_small_talk(relay: Relay) -> None:
    ticket_id = await escalated(relay)
    relay.source.asked.clear()
    queued = await relay.say("hello? anyone there about my bill")  # queued: no agent is seated yet
    await seat(relay, "a1", "ada")
    assert not (await relay.ask(ticket_id, queued["message_id"]))["ok"]  # not seated: nothing to ask for
    await relay.sio.call(A, "accept", "a1", {"ticket_id": ticket_id})
    await relay.copilot.settled()
    relay.sio.clear()
    small_talk = await relay.say("ok thanks")
    assert (await relay.ask(ticket_id, small_talk["message_id"]))["suggestions"] is None
    assert relay.source.asked == ["hello? anyone there about my bill"]  # the handoff's question, once


async def test_a_transfer_brings_the_suggestions_to_the_next_agent(relay: Relay) -> None:
    ticket_id, _, _ = await accepted(relay)
    bea = await seat(relay, "b1", "bea")
    relay.sio.clear()
    await relay.say("how do I change my payment due date")
    ack = await relay.sio.call(A, "transfer", "a1", {"ticket_id": ticket_id, "to_agent_id": bea, "note": "dates"})
    assert ack["ok"]
    await relay.copilot.settled()
    handed = [e for e in relay.sio.sent("suggestions") if e.to == agent_room(bea)]
    assert len(handed) == 1 and handed[0].data["context"] == "handoff"
    assert handed[0].data["articles"][0]["article_id"] == "change-payment-date"


async def test_inserted_then_sent_unchanged_or_edited_is_counted_per_article_and_agent(relay: Relay) -> None:
    ticket_id, ada, _ = await accepted(relay)
    shown = await relay.say_and_see(ticket_id, "where can I download my bill as a pdf")
    top = shown["articles"][0]
    used = {
        "ticket_id": ticket_id,
        "suggestion_id": shown["suggestion_id"],
        "kind": "article",
        "ref": top["article_id"],
    }
    first = await relay.sio.call(A, "suggestion_used", "a1", used)
    assert first["ok"] and first["text"] == top["text"]
    said = await relay.sio.call(A, "agent_message", "a1", {"ticket_id": ticket_id, "text": first["text"]})
    sent = {"ticket_id": ticket_id, "use_id": first["use_id"], "message_id": said["message_id"]}
    assert (await relay.sio.call(A, "suggestion_sent", "a1", sent))["outcome"] == "unchanged"
    again = await relay.sio.call(A, "suggestion_used", "a1", used)
    said = await relay.sio.call(
        A, "agent_message", "a1", {"ticket_id": ticket_id, "text": "In short: " + again["text"]}
    )
    sent = {"ticket_id": ticket_id, "use_id": again["use_id"], "message_id": said["message_id"]}
    assert (await relay.sio.call(A, "suggestion_sent", "a1", sent))["outcome"] == "edited"
    refused = await relay.sio.call(A, "suggestion_sent", "a1", sent)  # counted once
    assert not refused["ok"]
    wrong = await relay.sio.call(A, "suggestion_used", "a1", {**used, "ref": "not-shown"})
    assert not wrong["ok"]
    async with relay.sessions() as s:  # type: ignore[operator]
        per_article = {r.key: r for r in await copilot.usage(s, "article")}
        per_agent = {r.key: r for r in await copilot.usage(s, "agent")}
        assert len(list((await s.execute(select(CopilotUse))).scalars())) == 2
    bill = per_article["view-bill"]
    assert (bill.inserted, bill.unchanged, bill.edited) == (2, 1, 1) and bill.shown >= 1
    mine = per_agent[str(ada)]
    assert (mine.inserted, mine.unchanged, mine.edited) == (2, 1, 1)
    assert mine.shown == sum(r.shown for r in per_article.values())


async def test_after_a_reload_each_set_stays_on_its_message_and_only_the_seated_agent_gets_them(relay: Relay) -> None:
    ticket_id, _, _ = await accepted(relay)
    await relay.say_and_see(ticket_id, "where can I download my bill as a pdf")
    await relay.say("something about my bill again")  # not on screen (the agent had another chat open): unranked
    await relay.say_and_see(ticket_id, "and how do I change my payment due date")
    await relay.copilot.settled()
    got = await relay.sio.call(A, "suggestions_of", "a1", {"ticket_id": ticket_id})
    sets = got["suggestions"]
    assert [s["context"] for s in sets] == ["handoff", "message", "message"]
    assert [s["question"] for s in sets[1:]] == ["where can I download my bill as a pdf",
                                                "and how do I change my payment due date"]  # fmt: skip
    assert len({s["message_id"] for s in sets}) == 3
    await seat(relay, "b1", "bea")
    assert not (await relay.sio.call(A, "suggestions_of", "b1", {"ticket_id": ticket_id}))["ok"]


async def test_save_to_the_kb_a_draft_lands_in_the_inbox_and_once_published_the_bot_knows_it(relay: Relay) -> None:
    ticket_id, _, _ = await accepted(relay)
    question = "Can I pay my bill with dogecoin?"
    await relay.say(question)
    answer = "No, we take cards, bank transfer and PayPal, but not cryptocurrencies like dogecoin."
    said = await relay.sio.call(A, "agent_message", "a1", {"ticket_id": ticket_id, "text": answer})
    ack = await relay.sio.call(
        A, "save_to_kb", "a1", {"ticket_id": ticket_id, "message_id": said["message_id"], "mode": "draft"}
    )
    assert ack["ok"], ack
    saved = ack["saved"]
    assert saved["question"] == question and saved["mode"] == "draft" and saved["version"] == 1
    async with relay.sessions() as s:  # type: ignore[operator]
        view = await store.view(s, saved["article_id"])
        entry = (await s.execute(select(UnansweredQuestion))).scalars().all()[-1]
        row = (await s.execute(select(CopilotSaved))).scalar_one()
    assert view.article.answer == answer and view.article.questions == (question,)
    assert view.status == "draft" and view.published_version is None  # editors publish as they do now
    assert entry.text == question and "Ada" in entry.reason and f"#{ticket_id}" in entry.reason
    assert entry.resolved_at is None and (row.agent_name, row.ticket_id) == ("Ada", ticket_id)
    async with relay.service.sessions() as s, s.begin():  # the editor publishes
        await store.publish(s, saved["article_id"])
    live = await relay.service.refresh()
    assert live.retriever.decide(question).candidates[0].article_id == saved["article_id"]


async def test_save_to_the_kb_as_example_questions_of_the_suggested_article(relay: Relay) -> None:
    ticket_id, _, _ = await accepted(relay)
    await relay.say("my bill pdf wont open on my phone, where else can I get it")
    said = await relay.sio.call(A, "agent_message", "a1", {"ticket_id": ticket_id, "text": "Log in on the website."})
    req = {"ticket_id": ticket_id, "message_id": said["message_id"], "mode": "examples", "article_id": "view-bill"}
    ack = await relay.sio.call(A, "save_to_kb", "a1", req)
    assert ack["ok"] and ack["saved"]["article_id"] == "view-bill" and ack["saved"]["version"] == 2
    async with relay.sessions() as s:  # type: ignore[operator]
        latest = await store.latest_version(s, "view-bill")
    assert "my bill pdf wont open on my phone, where else can I get it" in latest.questions
    not_agent = await relay.sio.call(A, "save_to_kb", "a1", {**req, "message_id": 1})
    assert not not_agent["ok"]


async def test_a_publish_reaches_the_suggestions_at_once(relay: Relay) -> None:
    ticket_id, _, _ = await accepted(relay)
    from knowledge.articles import Article

    gift = Article(id="gift-cards", title="Gift cards", answer="Gift cards are sold in every store.",
                   questions=("do you sell gift cards", "can I buy a gift card", "gift voucher for a friend"))  # fmt: skip
    async with relay.service.sessions() as s, s.begin():
        await store.create_article(s, gift)
        await store.publish(s, gift.id)
    await relay.service.refresh()  # what the action server's poller does within a second
    shown = await relay.say_and_see(ticket_id, "do you sell gift cards")
    assert shown["articles"][0]["article_id"] == "gift-cards"
    async with relay.sessions() as s:  # type: ignore[operator]
        assert (await s.get(Message, shown["message_id"])) is not None


async def test_suggestions_asked_at_once_are_ranked_together_and_each_gets_its_own(relay: Relay) -> None:
    """Many customers' messages at once (the human phase at peak): one encoder pass for those that waited, and each
    request gets exactly what it would have got alone."""
    texts = ["where can I download my bill as a pdf", "I forgot my password and cannot log in"] * 6
    alone = [await relay.source.batcher.rank(text, 3) for text in texts[:2]]
    passes: list[int] = []
    live = await relay.service.current()
    rank_many = live.retriever.rank_many

    def counting(batch: list[str], k: int) -> list[list[Scored]]:
        passes.append(len(batch))
        return rank_many(batch, k)

    object.__setattr__(live.retriever, "rank_many", counting)
    try:
        together = await asyncio.gather(*(relay.source.batcher.rank(text, 2) for text in texts))
    finally:
        object.__delattr__(live.retriever, "rank_many")
    assert sum(passes) == len(texts) and len(passes) <= 2  # the first alone (the encoder was idle), then the rest
    for text, (_, found) in zip(texts, together, strict=True):
        expected = alone[texts.index(text)][1][:2]
        assert [s.article_id for s in found] == [s.article_id for s in expected]
        assert [round(s.score, 4) for s in found] == [round(s.score, 4) for s in expected]


async def test_with_the_copilot_off_no_suggestions_are_made_and_the_chat_is_unchanged(relay: Relay) -> None:
    """WARMLINE_COPILOT=false: a team that does not want suggestions gets none, and the action server ranks nothing."""
    relay.copilot.enabled = False
    ticket_id, _, _ = await accepted(relay)
    asked = len(relay.source.asked)
    ack = await relay.say("where can I download my bill as a pdf")
    answer = await relay.ask(ticket_id, ack["message_id"])
    await relay.copilot.settled()
    assert ack["ok"] and relay.sio.sent("suggestions") == [] and answer == {"ok": True, "suggestions": None}
    assert len(relay.source.asked) == asked == 0  # neither on accept nor for the message
    (relayed,) = [e for e in relay.sio.sent("chat_message") if e.data["message"]["message_id"] == ack["message_id"]]
    assert relayed.data["ticket_id"] == ticket_id
