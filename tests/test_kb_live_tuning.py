"""The action server's live KB swaps in the encoder fine-tuned on the KB (actions/kb_service.py, real model and a
temporary SQLite database): the frozen encoder answers at once after a publish, the tuned one replaces it once it
is ready, and a newer publish goes live at once without waiting for a fine-tune."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from actions import kb_service
from actions.kb_service import KBService
from common.settings import Settings
from knowledge import store
from knowledge.articles import Article
from knowledge.embeddings import bundled_model_path
from warmline.migrate import upgrade

GIFT = Article(id="gift-cards", title="Gift cards", answer="In any store.", questions=("do you sell gift cards",))

pytestmark = pytest.mark.skipif(bundled_model_path() is None, reason="needs the bundled sentence encoder")


async def wait_until_tuned(service: KBService, timeout_s: float = 240.0) -> float:
    started = time.monotonic()
    while not (await service.current()).tuned:
        assert time.monotonic() - started < timeout_s, "the fine-tuned encoder never went live"
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def test_the_tuned_encoder_replaces_the_frozen_one_and_a_publish_does_not_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kb_service, "TUNE_AFTER_S", 0.1)
    settings = Settings(state_dir=tmp_path, DATABASE_URL=None)
    upgrade(settings.db_url)
    service = KBService(settings)
    try:
        await service.start()
        first = await service.current()
        assert not first.tuned and first.retriever.mode == "embeddings"
        seconds = await wait_until_tuned(service)
        tuned = await service.current()
        assert tuned.version == first.version and tuned.retriever.mode == "tuned"
        print(f"demo KB: tuned encoder live {seconds:.1f} s after start")
        question = first.kb.articles[0].questions[0]
        assert tuned.retriever.rank(question, 1)[0].article_id == first.kb.articles[0].id

        async with service.sessions() as s, s.begin():
            await store.create_article(s, GIFT)
            await store.publish(s, GIFT.id)
        published = await service.refresh()  # live at once, with the frozen encoder
        assert not published.tuned and published.kb.by_id(GIFT.id) == GIFT
        assert published.retriever.rank("do you sell gift cards", 1)[0].article_id == GIFT.id
        await wait_until_tuned(service)
        assert (await service.current()).version == published.version
    finally:
        await service.stop()
