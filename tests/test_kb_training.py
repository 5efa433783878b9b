"""The trainer exports the published KB from the database (knowledge/db_read.py, warmline/training.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from common.db import create_engine, session_factory
from common.settings import Settings
from knowledge import store
from knowledge.articles import Article, load_kb
from knowledge.seed import seed_blocking
from warmline.migrate import upgrade
from warmline.training import fingerprint, training_kb, write_training_files


async def test_training_data_follows_the_published_kb(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, DATABASE_URL=None)
    demo = load_kb(settings.kb_path)
    assert training_kb(settings) == demo  # no database yet: the seed YAML, and no database file is created
    assert not (tmp_path / "warmline.db").exists()
    from_yaml = fingerprint(settings)

    upgrade(settings.db_url)
    assert seed_blocking(settings.db_url, settings.kb_path)
    assert training_kb(settings) == demo
    assert fingerprint(settings) == from_yaml  # same articles, same model: no retraining after the seed

    engine = create_engine(settings.db_url)
    try:
        async with session_factory(engine)() as s, s.begin():
            extra = Article(
                id="gift-cards", title="Gift cards", answer="In stores.", questions=("do you sell gift cards",)
            )
            await store.create_article(s, extra)
            assert fingerprint(settings) == from_yaml  # a draft is not trained
            await store.publish(s, "gift-cards")
    finally:
        await engine.dispose()
    assert fingerprint(settings) != from_yaml
    write_training_files(settings, tmp_path / "build")
    nlu = yaml.safe_load((tmp_path / "build" / "data" / "kb_nlu.yml").read_text())
    assert {"intent": "kb_gift_cards", "examples": "- do you sell gift cards\n"} in nlu["nlu"]
