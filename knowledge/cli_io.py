"""``warmline kb import`` / ``warmline kb export``: a file on one side, the database KB on the other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from common.db import create_engine, reading, run_blocking, session_factory
from knowledge import importers, store
from knowledge.importers import Format

T = TypeVar("T")


def _in_session(db_url: str, work: Callable[[AsyncSession], Awaitable[T]], write: bool) -> T:
    async def run() -> T:
        engine = create_engine(db_url)
        try:
            sessions = session_factory(engine)
            if not write:
                async with reading(sessions) as s:
                    return await work(s)
            async with sessions() as s, s.begin():
                return await work(s)
        finally:
            await engine.dispose()

    return run_blocking(run)


def import_file(db_url: str, path: str, fmt: Format | None, publish: bool) -> str:
    text = Path(path).read_text(encoding="utf-8")
    kb = importers.parse(text, fmt or importers.guess_format(path, text))  # raises before anything is written
    result = _in_session(db_url, lambda s: store.import_kb(s, kb, author=None, publish_all=publish), write=True)
    state = "published" if publish else "saved as drafts"
    return (
        f"Imported {len(kb.articles)} articles from {path} ({state}): {len(result.created)} new, "
        f"{len(result.updated)} updated, {len(result.unchanged)} unchanged"
    )


def export_file(db_url: str, path: str, fmt: Format | None, published_only: bool) -> str:
    chosen: Format = fmt or ("csv" if path.lower().endswith(".csv") else "yaml")
    kb = _in_session(db_url, store.published_kb if published_only else store.latest_kb, write=False)
    Path(path).write_text(importers.export(kb, chosen), encoding="utf-8")
    return f"Exported {len(kb.articles)} {'published' if published_only else 'latest'} articles to {path} ({chosen})"
