"""Alembic environment: runs migrations over the same async engine the app uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import handoff.models  # noqa: F401  (registers tables on Base.metadata)
import knowledge.models  # noqa: F401  (the KB tables)
from common.db import Base, create_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
