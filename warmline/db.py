"""The database engine and session factory (SQLAlchemy 2, async drivers: aiosqlite by default, asyncpg for PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, Executable, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase


READ_ONLY = "warmline_read_only"
AUTOCOMMIT = "warmline_autocommit"


class Base(DeclarativeBase):
    pass


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        db_file = url.split(":///", 1)[-1]
        if db_file and db_file != ":memory:":
            Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        # No rollback when a connection returns to the pool: sessions end their own transactions, and with
        # aiosqlite every rollback is a thread hop on the reply path.
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # Optimistic disconnect handling: a pre-ping costs three round trips per checkout (asyncpg opens a transaction
    # for it), more than the statement it guards. A connection found dead fails that one statement (the caller gets
    # a clear error and the customer's resend is idempotent) and SQLAlchemy then replaces the whole pool.
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_recycle=1800)


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
    options = conn.get_execution_options()
    if options.get(AUTOCOMMIT, False):
        return  # the driver is in autocommit mode (isolation_level None): each statement commits on its own
    conn.exec_driver_sql("BEGIN" if options.get(READ_ONLY, False) else "BEGIN IMMEDIATE")


@asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for reads only: on SQLite it does not take the write lock the others take up front."""
    async with sessions() as s:
        await s.connection(execution_options={READ_ONLY: True})
        yield s


@asynccontextmanager
async def autocommit(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose statements each commit on their own: for one statement on a hot path (a single INSERT of
    several rows is atomic by itself), saving the BEGIN and COMMIT round trips."""
    async with sessions() as s:
        sqlite = s.bind.dialect.name == "sqlite"
        # SQLite's driver is always in autocommit mode here; only our BEGIN (see _sqlite_begin) is skipped.
        await s.connection(execution_options={AUTOCOMMIT: True} if sqlite else {"isolation_level": "AUTOCOMMIT"})
        yield s


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class AutocommitWriter:
    """Runs one write statement that is atomic on its own (a single INSERT of one or more rows, an UPDATE) as
    cheaply as the database allows, for the chat's hot path.

    On PostgreSQL: one autocommitted round trip. On SQLite, the statement first runs on the event loop's own
    thread: aiosqlite hands every call to a worker thread, four hand-offs per statement at 0.1-0.3 ms each on a
    busy 2-core machine, while an INSERT into a WAL database commits in tens of microseconds (no fsync per
    commit). It never waits there: that connection has no busy timeout, and when another writer holds the lock
    the statement goes the usual way, through aiosqlite. It never checkpoints the WAL either (that fsyncs); the
    other connections do.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], url: str) -> None:
        self._sessions = sessions
        self._on_loop: sqlalchemy.Engine | None = None
        if url.startswith("sqlite+aiosqlite:///") and ":memory:" not in url:
            self._on_loop = sqlalchemy.create_engine(
                url.replace("sqlite+aiosqlite", "sqlite+pysqlite", 1), connect_args={"timeout": 0}, pool_size=1
            )
            event.listen(self._on_loop, "connect", _sqlite_connect_on_loop)

    async def execute(self, statement: Executable, rows: Sequence[Mapping[str, Any]] | None = None) -> list[Any]:
        """Execute (for each of ``rows``, if given); returns the first column of what it returns, such as the new
        ids of an INSERT ... RETURNING id, in whatever order the database gave them."""
        if self._on_loop is not None:
            try:
                with self._on_loop.connect() as conn:
                    return _first_column(conn.execute(statement, rows))
            except OperationalError as exc:
                if not _is_busy(exc):
                    raise
        async with autocommit(self._sessions) as s:
            return _first_column(await s.execute(statement, rows))

    def close(self) -> None:
        if self._on_loop is not None:
            self._on_loop.dispose()


def _sqlite_connect_on_loop(dbapi_conn: sqlite3.Connection, record: object) -> None:
    _sqlite_connect(dbapi_conn, record)
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


def _first_column(result: sqlalchemy.Result[Any]) -> list[Any]:
    return list(result.scalars()) if result.returns_rows else []


def _is_busy(exc: OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included: another connection holds the lock."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
