"""The database engine and session factory (SQLAlchemy 2, async drivers: aiosqlite by default, asyncpg for PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import Connection, DateTime, Executable, TypeDecorator, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session

from common.background import background_thread
from common.driver import Direct, Rows, begin_unless_begun, transaction

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
# When a WAL starts over after a checkpoint, its file is cut back to this (SQLite keeps it at its largest otherwise).
WAL_SIZE_LIMIT = 32 * 1024 * 1024
READ_ONLY = "warmline_read_only"
AUTOCOMMIT = "warmline_autocommit"
T = TypeVar("T")
# What a plain store function runs its statements on: the hot-path writer's (SQLite's driver for the statements
# declared ``common.driver.hot``, on the loop; a Connection otherwise), or an ORM session's (the functions use
# SQLAlchemy Core statements only, which mean the same on all three).
Executor = Connection | Session | Direct
# What the hot-path writer hands its work: ``Direct`` on SQLite's on-loop connection, a Connection otherwise.
WriteConnection = Connection | Direct


class Base(DeclarativeBase):
    pass


class UtcDateTime(TypeDecorator[datetime]):
    """Every stored timestamp, read back timezone-aware in UTC on every database. SQLite keeps no offset and hands
    back naive values, which a browser reading ``ts`` would take for its own local time; PostgreSQL's timestamptz
    comes back aware already. Stored as UTC whatever zone it was given in (SQLite would drop the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        db_file = url.split(":///", 1)[-1]
        if db_file and db_file != ":memory:":
            Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        # No rollback when a connection returns to the pool: sessions end their own transactions, and with
        # aiosqlite every rollback is a thread hop on the reply path.
        engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S}, pool_reset_on_return=None)
        writes = _WriteQueue()
        _WRITE_QUEUES[engine.sync_engine] = writes
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", writes.begin)
        event.listen(engine.sync_engine, "commit", writes.commit)
        event.listen(engine.sync_engine, "rollback", writes.rollback)
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
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.close()


class _WriteQueue:
    """A process's SQLite write transactions, one at a time in arrival order.

    SQLite has one writer at a time, and a second ``BEGIN IMMEDIATE`` waits in SQLite's busy handler, which sleeps
    1, 2, 5, ... up to 100 ms between tries: under load a writer can keep losing for a second or more (seen: 1.5 s
    in bench/escalation.py). A process's own writers queue on an asyncio lock instead, taken just before BEGIN
    IMMEDIATE and handed on at COMMIT or ROLLBACK; the busy handler is left to writers in other processes.
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()

    def begin(self, conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers wait instead of failing on upgrade; a read-only
        # transaction (see ``reading``) takes no lock and never waits for a writer.
        options = conn.get_execution_options()
        if options.get(AUTOCOMMIT, False):
            return  # the driver is in autocommit mode (isolation_level None): each statement commits on its own
        if options.get(READ_ONLY, False):
            conn.exec_driver_sql("BEGIN")
            return
        # Event handlers run inside SQLAlchemy's greenlet; run_async is its documented way to await from them.
        driver = conn.connection.dbapi_connection
        driver.run_async(lambda _: asyncio.wait_for(self.lock.acquire(), BUSY_TIMEOUT_S))  # type: ignore[union-attr]
        conn.info[_HOLDS_WRITE_LOCK] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if conn.info.pop(_HOLDS_WRITE_LOCK, False):  # unless SQLAlchemy's rollback of the failure handed it on
                self.lock.release()
            raise

    # These fire just before SQLAlchemy sends COMMIT or ROLLBACK; the turn is handed on only once it is done, so
    # the next writer never finds the file locked (SQLAlchemy's own call that follows finds nothing left to do).
    def commit(self, conn: Connection) -> None:
        self._end(conn, lambda driver: driver.commit())

    def rollback(self, conn: Connection) -> None:
        self._end(conn, lambda driver: driver.rollback())

    def _end(self, conn: Connection, finish: Callable[[Any], Awaitable[None]]) -> None:
        if not conn.info.pop(_HOLDS_WRITE_LOCK, False):
            return
        try:
            conn.connection.dbapi_connection.run_async(finish)  # type: ignore[union-attr]
        finally:
            self.lock.release()


_HOLDS_WRITE_LOCK = "warmline_holds_write_lock"
_WRITE_QUEUES: weakref.WeakKeyDictionary[sqlalchemy.Engine, _WriteQueue] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for reads only: on SQLite it does not take the write lock the others take up front."""
    async with sessions() as s:
        await s.connection(execution_options={READ_ONLY: True})
        yield s


@asynccontextmanager
async def _connection(engine: AsyncEngine, transaction: bool) -> AsyncIterator[AsyncConnection]:
    """A connection for a hot-path write through the async driver: in one transaction, or with each statement
    committed on its own (for one statement, or work that is fine stopped after any statement), saving the BEGIN and
    COMMIT round trips."""
    if transaction:
        async with engine.begin() as conn:
            yield conn
        return
    async with engine.connect() as conn:
        # SQLite's driver is always in autocommit mode here; only our BEGIN (see _WriteQueue.begin) is skipped.
        sqlite = engine.dialect.name == "sqlite"
        await conn.execution_options(**({AUTOCOMMIT: True} if sqlite else {"isolation_level": "AUTOCOMMIT"}))
        yield conn
        await conn.commit()  # ends SQLAlchemy's transaction; the database has committed each statement already


@contextmanager
def orm_session(conn: WriteConnection) -> Iterator[Session]:
    """An ORM session inside a hot-path write (the writer commits or rolls back): for the rare work that needs
    mapped objects (an agent taking a chat). Its changes are flushed when the block ends."""
    bind = conn.connection if isinstance(conn, Direct) else conn
    with Session(bind=bind, expire_on_commit=False, join_transaction_mode="rollback_only") as s:
        yield s
        s.flush()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# Hot-path writes between two WAL checkpoints: 3-4 pages each, about SQLite's own 1,000 pages (wal_autocheckpoint).
CHECKPOINT_EVERY = 250
# A WAL this long (pages; 16 MB) is started over by a RESTART checkpoint: under steady writes a PASSIVE one never
# catches up with the last commit, and only a fully copied WAL starts over.
RESTART_AT_FRAMES = 4096
RESTART_WAIT_S = 0.05  # the most a RESTART waits for the write lock and for readers (the hot path waits that long)


class _Checkpointer:
    """The WAL checkpoints that the hot-path writer's connection never runs on the loop (a checkpoint fsyncs): in a
    background thread of their own, with a connection of their own, every CHECKPOINT_EVERY writes. SQLite leaves
    them to the connection that commits, and while only the hot path wrote (the human phase) nothing else did: the
    WAL grew by about 14 KB a message (500 MB after 36,000 in scale-out c), and each commit extended it into fresh
    pages that the kernel zeroes first (a tenth of the relay's CPU there). PASSIVE: it copies what it can and never
    waits for, or blocks, a writer. Under steady writes it never copies the last commit before the next one comes,
    and only a WAL copied to its end starts over, so a long WAL gets a RESTART as well: it takes the write lock for
    the few pages written since the PASSIVE one and a sync (the hot path waits meanwhile), and the next write
    starts at the WAL's beginning again, on pages the kernel already has."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._thread = background_thread("wal-checkpoint", niceness=5)  # I/O mostly; the chat goes first
        self._connection: sqlite3.Connection | None = None
        self._running: Future[None] | None = None
        self._writes = 0

    def wrote(self, count: int) -> None:
        self._writes += count
        if self._writes >= CHECKPOINT_EVERY and (self._running is None or self._running.done()):
            self._writes = 0
            self._running = self._thread.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(self._database, timeout=RESTART_WAIT_S, isolation_level=None)
            _, frames, _ = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= RESTART_AT_FRAMES:
                self._connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()  # busy: the next one retries
        except sqlite3.Error as exc:  # the next one tries again; the WAL only grows meanwhile
            log.warning("WAL checkpoint failed: %s", exc)
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        if self._running is not None:  # a checkpoint ran: its connection is closed in its thread, where it was made
            self._thread.submit(self._close)
        self._thread.shutdown(wait=True)


# The on-loop write's tries when another process holds SQLite's write lock (about 40 ms in all), before the usual way.
ON_LOOP_RETRIES_S = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.008, 0.008, 0.008)


class HotPathWriter:
    """Runs the chat's hot-path writes as cheaply as the database allows: one statement that is atomic on its own
    (``execute``: a single INSERT of one or more rows, an UPDATE), or a few statements written as a plain function
    over a sync ``Connection`` (``write``: store the customer's message and read the chat's phase). A Connection,
    not an ORM session: for the same Core statements the session's machinery (its transaction, the ORM's compile
    and result steps) cost about three times the statements themselves (3 selects: 192 us against 67 us here).

    On PostgreSQL: the async driver, each statement autocommitted (one round trip each, see ``write``). On
    SQLite, the work first runs on the event loop's own thread: aiosqlite hands every call to a worker thread, four
    hand-offs per statement at 0.1-0.3 ms each on a busy 2-core machine, and those wake-ups compete with Rasa for
    the cores while it reads the message (measured: Rasa answered 1-2 ms later), while a short transaction on a WAL
    database commits in tens of microseconds (no fsync per commit). It never waits there: that connection has no
    busy timeout; when another process holds the lock it tries again a few times over about 40 ms (the loop runs
    on meanwhile), then goes the usual way, through aiosqlite. It never
    checkpoints the WAL there either (that fsyncs): a thread of its own does (``_Checkpointer``).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writes = _WRITE_QUEUES.get(engine.sync_engine)
        self._on_loop: sqlalchemy.Engine | None = None
        self._held: Connection | None = None  # the loop's own connection, open between writes
        self._queue: list[_Queued] = []  # writes waiting for the loop's connection, in arrival order
        self._flusher: asyncio.Task[None] | None = None
        self._usual: set[asyncio.Task[None]] = set()  # writes gone the usual way (the database was locked)
        self._checkpointer: _Checkpointer | None = None
        database = engine.url.database
        if self._writes is not None and database and database != ":memory:":
            self._checkpointer = _Checkpointer(database)
            self._on_loop = sqlalchemy.create_engine(
                engine.url.set(drivername="sqlite+pysqlite"), connect_args={"timeout": 0}, pool_size=1
            )
            event.listen(self._on_loop, "connect", _sqlite_connect_on_loop)
            # SQLAlchemy's own begin, for work that uses it (an ORM session): inside the driver's transaction.
            event.listen(self._on_loop, "begin", begin_unless_begun)

    async def execute(self, statement: Executable, rows: Sequence[Mapping[str, Any]] | None = None) -> list[Any]:
        """Execute (for each of ``rows``, if given); returns the first column of what it returns, such as the new
        ids of an INSERT ... RETURNING id, in whatever order the database gave them."""

        def on_loop(direct: Direct) -> list[Any]:
            return _first_column(direct.execute(statement, rows))

        async def usual() -> list[Any]:
            async with _connection(self._engine, transaction=False) as conn:
                return _first_column(await conn.execute(statement, rows))

        return await self._on_loop_first(on_loop, usual, alone=False)

    async def write(self, work: Callable[[WriteConnection], T], atomic: bool = False) -> T:
        """Run ``work``, a few statements that belong together, and commit; returns what it returns.

        On SQLite: one transaction (on the loop's thread it costs nothing to have one), or, with the writes that
        arrived beside it, a savepoint each in one transaction (``_run_group``). ``work`` may run more than once:
        again each time a try found the database locked by another process before doing anything. On PostgreSQL
        each statement commits on its own: at READ COMMITTED a transaction would give these statements no more
        isolation (each sees what was committed when it starts), and its BEGIN and COMMIT would be two more round
        trips. ``work`` must therefore be written so that stopping after any statement leaves nothing wrong (the
        customer's message: creating the conversation and merging its details are each fine on their own), or be
        run ``atomic``: one transaction on PostgreSQL too (an agent accepting a chat: the seat, its segment and the
        "joined" message stand or fall together), and on SQLite a transaction of its own. An exception from
        ``work`` rolls all of it back (and nothing of another's). Work that needs mapped objects opens
        ``orm_session(conn)`` inside, and must be ``atomic``.
        """

        async def usual() -> T:
            async with _connection(self._engine, transaction=atomic or self._writes is not None) as conn:
                return await conn.run_sync(work)

        return await self._on_loop_first(work, usual, alone=atomic)

    async def _on_loop_first(self, work: Callable[[Direct], T], usual: Callable[[], Awaitable[T]], alone: bool) -> T:
        if self._on_loop is None or self._writes is None:
            return await usual()
        loop = asyncio.get_running_loop()
        queued = _Queued(work, usual, alone, loop.create_future())
        self._queue.append(queued)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await queued.done  # type: ignore[no-any-return]

    async def _flush(self) -> None:
        """The queued writes, in arrival order, as groups: each group one transaction on the loop's own connection
        (group commit: under load most of a write's cost was its COMMIT, 18 % of the relay's time in scale-out c,
        and the writes that queue while one group runs share the next one's)."""
        try:
            while self._queue:
                for queued in await self._group_on_loop():  # the database stayed locked: the usual way, each
                    task = asyncio.get_running_loop().create_task(_settle(queued, queued.usual()))
                    self._usual.add(task)
                    task.add_done_callback(self._usual.discard)
        except BaseException as exc:
            for queued in self._queue:
                _fail(queued, exc)
            self._queue.clear()
            raise

    def _take(self) -> list[_Queued]:
        """The next group: the queued writes up to the first that must be alone (or that one alone)."""
        waiting = [q for q in self._queue if not q.done.done()]  # a caller gone (cancelled) needs nothing written
        count = 0
        while count < len(waiting) and not waiting[count].alone:
            count += 1
        count = max(count, 1) if waiting else 0
        group, self._queue = waiting[:count], waiting[count:]
        return group

    async def _group_on_loop(self) -> list[_Queued]:
        """Run the next group on the loop; returns it if another process kept the lock through every try."""
        assert self._writes is not None
        for pause_s in (*ON_LOOP_RETRIES_S, None):
            async with self._writes.lock:  # behind this process's write transactions, in turn
                group = self._take()
                if not group or self._run_group(group):
                    return []
                self._queue[:0] = group  # locked elsewhere: still first in line, with what arrives meanwhile behind
            if pause_s is None:
                break
            # Another process is writing, most likely one short hot-path write: try again in a moment, without
            # holding this process's turn. SQLite's own busy handler (the usual way) sleeps 50-100 ms between
            # tries once it has waited a while, and loses the lock to the other process's writes meanwhile:
            # the action server's KB answer rows waited 0.5-1.8 s that way while the relay wrote its turns.
            await asyncio.sleep(pause_s)
        # Still locked (a long transaction elsewhere): wait for it the usual way, without holding this process's
        # turn (its other writers may hold every pooled connection while they wait for that turn).
        return self._take()

    def _run_group(self, group: list[_Queued]) -> bool:
        """One transaction for the group; False (nothing done) if another process holds the lock. Each write of
        a group of several runs in a savepoint, so that one that fails rolls back only itself; the results are
        given once the group has committed. If the transaction itself fails, each write is tried again alone."""
        assert self._on_loop is not None
        if self._held is None:  # kept open between writes: a pool checkout and return cost more than a short write
            self._held = self._on_loop.connect()
        alone = len(group) == 1
        outcomes: list[tuple[_Queued, BaseException | None, Any]] = []
        try:
            with transaction(self._held) as direct:
                driver: sqlite3.Connection = self._held.connection.dbapi_connection  # type: ignore[assignment]
                for queued in group:
                    if alone:
                        outcomes.append((queued, None, queued.work(direct)))
                        continue
                    driver.execute("SAVEPOINT hot_write")
                    try:
                        result = queued.work(direct)
                    except Exception as exc:  # handed to its caller; the others go on
                        driver.execute("ROLLBACK TO hot_write")
                        outcomes.append((queued, exc, None))
                    else:
                        outcomes.append((queued, None, result))
                    driver.execute("RELEASE hot_write")
        except Exception as exc:
            # Rolled back already; a fresh connection next time, whatever state the driver was left in. (A work's
            # own exceptions leave it clean: its transaction was rolled back.)
            if isinstance(exc, DBAPIError | sqlite3.Error):
                self._held.close()
                self._held = None
                if isinstance(exc, OperationalError) and _is_busy(exc) and not outcomes:
                    return False
            if alone:
                _fail(group[0], exc)
            else:  # the group as a whole failed: each on its own, as if it had come alone
                self._queue[:0] = [_Queued(q.work, q.usual, True, q.done) for q in group]
            return True
        if self._checkpointer is not None:
            self._checkpointer.wrote(len(group))
        for queued, error, result in outcomes:
            if error is not None:
                _fail(queued, error)
            else:
                _give(queued, result)
        return True

    def close(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None
        if self._on_loop is not None:
            self._on_loop.dispose()
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None


@dataclass
class _Queued:
    """A write waiting for the loop's connection: its work there, the usual way instead, and its caller's future."""

    work: Callable[[Direct], Any]
    usual: Callable[[], Awaitable[Any]]
    alone: bool  # in a transaction of its own (atomic work, an ORM session)
    done: asyncio.Future[Any]


def _fail(queued: _Queued, error: BaseException) -> None:
    if not queued.done.done():
        queued.done.set_exception(error)


def _give(queued: _Queued, result: Any) -> None:
    if not queued.done.done():  # its caller may have gone (cancelled) meanwhile
        queued.done.set_result(result)


async def _settle(queued: _Queued, running: Awaitable[Any]) -> None:
    try:
        result = await running
    except Exception as exc:
        _fail(queued, exc)
    else:
        _give(queued, result)


def _sqlite_connect_on_loop(dbapi_conn: sqlite3.Connection, record: object) -> None:
    _sqlite_connect(dbapi_conn, record)
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


def _first_column(result: sqlalchemy.Result[Any] | Rows) -> list[Any]:
    # A statement without RETURNING gives a cursor result with no rows to read.
    if isinstance(result, sqlalchemy.CursorResult) and not result.returns_rows:
        return []
    return list(result.scalars())


def _is_busy(exc: OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included: another connection holds the lock."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def run_blocking(work: Callable[[], Awaitable[T]]) -> T:
    """Run async database work to completion from synchronous code (the CLI, the trainer, migrations), on an event
    loop of its own in a thread of its own: that works the same whether or not the caller is inside a loop."""

    async def run() -> T:
        return await work()

    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, run()).result()
