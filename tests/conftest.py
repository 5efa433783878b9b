from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import create_engine, session_factory
from common.settings import Settings
from knowledge.articles import KnowledgeBase, load_kb
from tests.handler_harness import relay  # noqa: F401 (the handlers over recording fakes: a fixture)
from tests.stack import Stack, running_stack
from warmline.migrate import upgrade


@pytest.fixture(scope="session")
def demo_kb() -> KnowledgeBase:
    return load_kb(Settings().kb_path)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real Rasa, action server and relay, started once for the whole test run."""
    with running_stack(tmp_path_factory.mktemp("warmline-state")) as running:
        yield running


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated SQLite database of the test's own, for store-level tests."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    upgrade(url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def test_output() -> Path:
    out = Path(__file__).resolve().parent.parent / "test-output"
    out.mkdir(exist_ok=True)
    return out
