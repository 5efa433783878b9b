"""Seed the database KB from the demo YAML the first time, so a fresh install answers out of the box."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import create_engine, run_blocking, session_factory
from knowledge import store
from knowledge.articles import load_kb

log = logging.getLogger(__name__)


async def seed(sessions: async_sessionmaker[AsyncSession], kb_path: Path) -> bool:
    """Import ``kb_path`` as published articles if the KB table is empty; True if it did."""
    kb = load_kb(kb_path)
    try:
        async with sessions() as s, s.begin():
            seeded = await store.seed_if_empty(s, kb)
    except IntegrityError:
        # Another process (relay, action server, CLI) seeded at the same moment: its import won, which is the same.
        return False
    if seeded:
        log.info("KB seeded from %s: %d articles", kb_path, len(kb.articles))
    return seeded


def seed_blocking(db_url: str, kb_path: Path) -> bool:
    """``seed`` for the CLI (``common.db.run_blocking``)."""

    async def run() -> bool:
        engine = create_engine(db_url)
        try:
            return await seed(session_factory(engine), kb_path)
        finally:
            await engine.dispose()

    return run_blocking(run)
