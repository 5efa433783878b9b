"""The KB migration and store on a real PostgreSQL (booleans, JSON, the revision counter)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from common.db import create_engine, session_factory
from common.settings import Settings, normalize_db_url
from knowledge import inbox, store
from knowledge.articles import load_kb
from knowledge.seed import seed
from tests.services import create_pg_database, drop_pg_database
from warmline.migrate import upgrade

pytestmark = pytest.mark.postgres


async def test_kb_on_postgresql() -> None:
    url, name = await create_pg_database()
    engine = None
    try:
        db_url = normalize_db_url(url)
        upgrade(db_url)
        engine = create_engine(db_url)
        sessions = session_factory(engine)
        demo = load_kb(Settings().kb_path)
        assert await seed(sessions, Settings().kb_path)
        async with sessions() as s, s.begin():
            article = demo.articles[0]
            await store.save_version(s, replace(article, always_human=True), "ed")
            await store.publish(s, article.id)
            await inbox.record(s, "do you sell gift cards", "conv-1", "not_sure")
        async with sessions() as s:
            kb = await store.published_kb(s)
            assert kb.articles[0].always_human and kb.articles[1:] == demo.articles[1:]
            assert await store.revision(s) == len(demo.articles) + 1
            assert [g.group.label for g in await inbox.open_groups(s)] == ["do you sell gift cards"]
    finally:
        if engine is not None:
            await engine.dispose()
        await drop_pg_database(name)
