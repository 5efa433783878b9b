"""The action server's live KB (actions/kb_service.py) against a temporary SQLite database, and quick-reply picks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from rasa_sdk import Tracker

from actions.answer import choice_payload, chosen_article, domain_intents
from actions.kb_service import KBService
from common.settings import Settings
from knowledge import store
from knowledge.articles import Article, load_kb
from warmline.migrate import upgrade

GIFT = Article(id="gift-cards", title="Gift cards", answer="In any store.", questions=("do you sell gift cards",))


async def test_live_kb_follows_publishes_and_keeps_its_index_otherwise(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, DATABASE_URL=None)
    upgrade(settings.db_url)
    service = KBService(settings)
    try:
        await service.start()
        first = await service.current()
        assert first.kb == load_kb(settings.kb_path)  # seeded from the YAML on first start
        assert await service.refresh() is first  # same revision: no rebuild

        async with service.sessions() as s, s.begin():
            await store.create_article(s, GIFT)
        assert await service.refresh() is first  # a draft changes nothing live

        async with service.sessions() as s, s.begin():
            await store.publish(s, GIFT.id)
        live = await service.refresh()
        assert live is not first and live.kb.by_id(GIFT.id) == GIFT
        assert live.retriever.rank("do you sell gift cards", 1)[0].article_id == GIFT.id

        async with service.sessions() as s, s.begin():
            await store.save_version(s, replace(GIFT, answer="Online too."))
            await store.rollback(s, GIFT.id, 1)
        assert (await service.refresh()).kb.by_id(GIFT.id) == GIFT
    finally:
        await service.stop()


def tracker(text: str, intent: str | None, entities: list[dict[str, str]] | None = None) -> Tracker:
    message: dict[str, Any] = {"text": text, "intent": {"name": intent} if intent else {}, "entities": entities or []}
    return Tracker("c1", {}, message, [], False, None, {}, "")


def test_a_click_picks_the_article_even_when_rasa_does_not_know_its_intent() -> None:
    by_intent = {GIFT.intent: GIFT}
    assert choice_payload(GIFT, {"greet", "kb_gift_cards"}) == "/kb_gift_cards"
    assert choice_payload(GIFT, None) == "/kb_gift_cards"
    payload = choice_payload(GIFT, {"greet"})  # published after the model was trained
    assert payload == '/nlu_fallback{"kb_article":"gift-cards"}'
    assert chosen_article(tracker("/kb_gift_cards", "kb_gift_cards"), by_intent) == GIFT
    entity = [{"entity": "kb_article", "value": "gift-cards"}]
    assert chosen_article(tracker(payload, "nlu_fallback", entity), by_intent) == GIFT
    assert chosen_article(tracker("kb_gift_cards", "kb_gift_cards"), by_intent) is None  # typed, not clicked
    assert (
        chosen_article(
            tracker('/nlu_fallback{"kb_article":"nope"}', "nlu_fallback", [{"entity": "kb_article", "value": "nope"}]),
            by_intent,
        )
        is None
    )
    assert domain_intents({"intents": ["greet", {"kb_x": {"use_entities": True}}]}) == {"greet", "kb_x"}
    assert domain_intents({}) is None
