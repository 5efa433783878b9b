"""The database KB (knowledge/store.py, knowledge/inbox.py) against a real, migrated SQLite file."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.errors import Conflict, InvalidArticle, NotFound
from common.settings import Settings
from knowledge import inbox, store
from knowledge.articles import Article, KnowledgeBase, load_kb
from knowledge.seed import seed

ARTICLE = Article(
    id="pet-policy",
    title="Pets in our stores",
    answer="Dogs on a lead are welcome in every store.",
    questions=("can I bring my dog to the store",),
    tags=("stores",),
)


async def test_seed_publishes_the_demo_yaml_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    demo = load_kb(Settings().kb_path)
    assert await seed(sessions, Settings().kb_path)
    assert not await seed(sessions, Settings().kb_path)  # not empty any more
    async with sessions() as s:
        assert await store.published_kb(s) == demo
        assert await store.revision(s) == len(demo.articles)


async def test_edits_are_drafts_until_published_and_bump_the_revision(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        await store.create_article(s, ARTICLE, "ed")
    async with sessions() as s:
        assert (await store.published_kb(s)).articles == ()
        assert await store.revision(s) == 0
        view = await store.view(s, ARTICLE.id)
        assert (view.status, view.latest_version, view.published_version) == ("draft", 1, None)

    async with sessions() as s, s.begin():
        await store.publish(s, ARTICLE.id)
    edited = replace(ARTICLE, answer="Dogs and cats on a lead are welcome.")
    async with sessions() as s, s.begin():
        await store.save_version(s, edited, "ed")
    async with sessions() as s:
        assert (await store.published_kb(s)).articles == (ARTICLE,)  # the edit is not live yet
        assert await store.revision(s) == 1
        view = await store.view(s, ARTICLE.id)
        assert view.has_unpublished_changes and view.article == edited

    async with sessions() as s, s.begin():
        await store.publish(s, ARTICLE.id)
    async with sessions() as s:
        assert (await store.published_kb(s)).articles == (edited,)
        assert await store.revision(s) == 2


async def test_rollback_publishes_old_content_as_a_new_version(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await store.create_article(s, ARTICLE, "ed")
        await store.publish(s, ARTICLE.id)
        await store.save_version(s, replace(ARTICLE, answer="Changed."), "ed")
        await store.publish(s, ARTICLE.id)
    async with sessions() as s, s.begin():
        version = await store.rollback(s, ARTICLE.id, 1, "ed")
    assert version.number == 3 and version.note == "rollback to v1"
    async with sessions() as s:
        assert (await store.published_kb(s)).articles == (ARTICLE,)
        assert [v.number for v in await store.versions(s, ARTICLE.id)] == [3, 2, 1]
        with pytest.raises(NotFound):
            await store.rollback(s, ARTICLE.id, 9)


async def test_ids_and_titles_are_unique(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await store.create_article(s, ARTICLE)
    async with sessions() as s:
        with pytest.raises(Conflict, match="already exists"):
            await store.create_article(s, replace(ARTICLE, title="Other"))
        with pytest.raises(Conflict, match="already has the title"):
            await store.create_article(s, replace(ARTICLE, id="pets-2", title="PETS in our stores"))


async def test_add_questions_skips_known_ones(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await store.create_article(s, ARTICLE)
        await store.add_questions(s, ARTICLE.id, ["Can I bring my  DOG to the store", "are cats allowed in shops"])
    async with sessions() as s:
        assert (await store.view(s, ARTICLE.id)).article.questions == (*ARTICLE.questions, "are cats allowed in shops")
        with pytest.raises(InvalidArticle):
            await store.add_questions(s, ARTICLE.id, ["are cats allowed in shops"])


async def test_import_is_all_or_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    other = Article(id="other", title="Pets in our stores", answer="x", questions=("y",))
    async with sessions() as s, s.begin():
        await store.create_article(s, other)
    good = replace(ARTICLE, id="a-first", title="First")
    clash = replace(ARTICLE, id="b-second")  # its title belongs to "other"
    with pytest.raises(Conflict):
        async with sessions() as s, s.begin():
            await store.import_kb(s, KnowledgeBase((good, clash)))
    async with sessions() as s:
        assert await store.count_articles(s) == 1  # "a-first" was rolled back with the rest
        assert await store.revision(s) == 0


async def test_inbox_groups_and_resolves(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await store.create_article(s, ARTICLE)
        for text in ("do you ship to canada", "shipping to Canada?", "wifi password for the router",
                     "router wifi password", "/human"):  # fmt: skip
            await inbox.record(s, text, "conv-1", "not_sure")
    async with sessions() as s:
        groups = await inbox.open_groups(s)
    assert sorted(len(g.group.ids) for g in groups) == [2, 2]  # the /human click was never stored
    canada = next(g for g in groups if "anada" in g.group.label)
    wifi = next(g for g in groups if "wifi" in g.group.label)
    async with sessions() as s, s.begin():
        draft = {"id": "shipping-canada", "title": "Shipping to Canada", "answer": "Yes, in 5 days."}
        version = await inbox.to_new_article(s, canada.group.ids, draft, "ed")
        await inbox.to_existing_article(s, wifi.group.ids, ARTICLE.id, "ed")
    assert set(version.questions) == set(canada.group.texts)
    async with sessions() as s:
        assert await inbox.open_groups(s) == []
        assert set(wifi.group.texts) <= set((await store.view(s, ARTICLE.id)).article.questions)
        with pytest.raises(InvalidArticle, match="no longer in the inbox"):
            await inbox.dismiss(s, wifi.group.ids)
