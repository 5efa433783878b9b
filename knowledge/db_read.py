"""Blocking reads of the database KB for synchronous callers (the trainer), tolerant of a database not made yet."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import DBAPIError

from common.db import create_engine, reading, run_blocking, session_factory
from knowledge import store
from knowledge.articles import KnowledgeBase


def published_kb_or_none(db_url: str) -> KnowledgeBase | None:
    """The published KB, or None when there is no database or no KB tables yet (before the first migration)."""
    if db_url.startswith("sqlite"):
        db_file = db_url.split(":///", 1)[-1]
        if not db_file or db_file == ":memory:" or not Path(db_file).exists():
            return None  # do not create an empty database file just by looking

    async def read() -> KnowledgeBase | None:
        engine = create_engine(db_url)
        try:
            async with reading(session_factory(engine)) as s:  # never waits for a writer
                return await store.published_kb(s)
        except DBAPIError:
            return None  # no such table (not migrated) or the server is down: the caller falls back to the YAML
        finally:
            await engine.dispose()

    return run_blocking(read)
