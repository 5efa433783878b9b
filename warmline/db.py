"""The database engine and session factory (SQLAlchemy 2, async drivers: aiosqlite by default, asyncpg for PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase


READ_ONLY = "warmline_read_only"


class Base(DeclarativeBase):
    pass


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        db_file = url.split(":///", 1)[-1]
        if db_file and db_file != ":memory:":
            Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_connect(dbapi_conn: object, _record: object) -> None:
    # The driver's own transaction handling breaks SAVEPOINT; SQLAlchemy's documented fix is to BEGIN ourselves.
    dbapi_conn.isolation_level = None  # type: ignore[attr-defined]
    # WAL lets several relay processes read while one writes; NORMAL sync is durable across app crashes in WAL mode.
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two writers wait (busy timeout) instead of failing on upgrade;
    # a read-only transaction (see ``reading``) takes no lock and never waits for a writer.
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


@asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for reads only: on SQLite it does not take the write lock the others take up front."""
    async with sessions() as s:
        await s.connection(execution_options={READ_ONLY: True})
        yield s


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
