"""The chat's hot statements straight on SQLite's driver, inside the on-loop writer's transaction (common/db.py).

For a short Core statement SQLAlchemy's execution (its execution context, parameter and result objects, events)
costs several times what SQLite takes to run it: about 45 us against 5 us here, and a chat message runs three or
four. A statement declared with ``hot(statement)`` (at import, as a module constant) is compiled once per set of
parameter names; on the on-loop SQLite connection it then runs on the driver's cursor, each parameter and result
value converted by its column type's own processors (the ones SQLAlchemy would use), and driver errors raised as
SQLAlchemy's. Everything else (ORM work, statements built per call) runs through SQLAlchemy on the same connection,
in the same transaction; on PostgreSQL every statement does.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.sql.compiler import SQLCompiler

E = TypeVar("E", bound=Executable)
Processor = Callable[[Any], Any] | None

# Each hot statement's plans, one per tuple of parameter names (an INSERT's columns are the parameters given).
_HOT: dict[Executable, dict[tuple[str, ...], _Plan | None]] = {}


def hot(statement: E) -> E:
    """Declare a module-level statement as one of the chat's hot statements (returns it unchanged)."""
    _HOT.setdefault(statement, {})
    return statement


class _Plan:
    """A statement compiled once for SQLite: its SQL, its parameters in order (the caller's key or a fixed value, and
    the type's bind processor), its result columns (names and result processors)."""

    def __init__(self, compiled: SQLCompiler, dialect: Dialect) -> None:
        self.sql = compiled.string
        self.params: list[tuple[str, bool, Any, Processor]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.params.append((bind.key, bind.required, bind.effective_value, processor))
        columns = compiled._result_columns or []
        self.returns_rows = bool(columns)
        self.row = namedtuple("Row", [c.keyname for c in columns], rename=True)  # type: ignore[misc]
        self.results: list[Processor] = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        """None for what only SQLAlchemy's execution does right: an expanding IN, Python-side column defaults."""
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        if not isinstance(compiled, SQLCompiler) or (
            compiled.positiontup is None
            or compiled.literal_execute_params
            or compiled.post_compile_params
            or compiled.insert_prefetch
            or compiled.update_prefetch
        ):
            return None
        return cls(compiled, dialect)

    def bind(self, given: Mapping[str, Any]) -> list[Any]:
        out = []
        for key, required, value, processor in self.params:
            if key in given:
                value = given[key]
            elif required:
                raise KeyError(f"a value is required for bind parameter {key!r} of {self.sql!r}")
            out.append(processor(value) if processor is not None else value)
        return out

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        processors = self.results
        if not any(processors):
            return [self.row(*r) for r in raw]
        return [self.row(*(p(v) if p is not None else v for p, v in zip(processors, r, strict=True))) for r in raw]


class Rows:
    """The rows of a hot statement, read at once (these are a few rows at most), with the part of SQLAlchemy's
    ``Result`` that the hot path uses; each row is a named tuple (``row.status``, ``row._asdict()``)."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any | None:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any | None:
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self) -> Any:
        row = self.one_or_none()
        if row is None:
            raise NoResultFound("No row was found when one was required")
        return row

    def scalar_one_or_none(self) -> Any | None:
        row = self.one_or_none()
        return row[0] if row is not None else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [r[0] for r in self._rows]


class Direct:
    """What the on-loop writer's work runs its statements on: hot statements on the driver, the rest through
    SQLAlchemy's ``connection`` (ORM sessions too: ``common.db.orm_session``), all in the one transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._driver: sqlite3.Connection = connection.connection.dbapi_connection  # type: ignore[assignment]

    @property
    def connection(self) -> Connection:
        """SQLAlchemy's connection, inside the driver's transaction: SQLAlchemy's own is begun first (it finds the
        driver's begun and adds nothing), so that an ORM session joins it instead of ending it, and it commits."""
        if not self._connection.in_transaction():
            self._connection.begin()
        return self._connection

    def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> Rows | CursorResult[Any]:
        plans = _HOT.get(statement)
        if plans is None:
            return self.connection.execute(statement, parameters)  # type: ignore[arg-type]
        many: Sequence[Mapping[str, Any]] = (
            [parameters or {}] if parameters is None or isinstance(parameters, Mapping) else parameters
        )
        keys = tuple(many[0]) if many else ()
        if keys not in plans:
            plans[keys] = _Plan.of(statement, self._connection.dialect, keys)
        plan = plans[keys]
        if plan is None:
            return self.connection.execute(statement, parameters)  # type: ignore[arg-type]
        cursor = self._driver.cursor()
        raw: list[tuple[Any, ...]] = []
        for given in many:
            values = plan.bind(given)
            try:
                cursor.execute(plan.sql, values)
                if plan.returns_rows:
                    raw.extend(cursor.fetchall())
            except sqlite3.Error as exc:
                raise _as_sqlalchemy(exc, plan.sql, values) from exc
        cursor.close()
        return Rows(plan.rows(raw))


@contextmanager
def transaction(connection: Connection) -> Iterator[Direct]:
    """One write transaction on the on-loop connection, begun and ended on the driver (BEGIN IMMEDIATE: the write
    lock up front, or SQLITE_BUSY at once). If the work used SQLAlchemy too, SQLAlchemy ends it."""
    driver: sqlite3.Connection = connection.connection.dbapi_connection  # type: ignore[assignment]
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise _as_sqlalchemy(exc, "BEGIN IMMEDIATE", ()) from exc
    try:
        yield Direct(connection)
    except BaseException:
        if connection.in_transaction():
            connection.rollback()
        elif driver.in_transaction:
            driver.rollback()
        raise
    if connection.in_transaction():
        connection.commit()
        return
    try:
        driver.commit()
    except sqlite3.Error as exc:
        if driver.in_transaction:
            driver.rollback()
        raise _as_sqlalchemy(exc, "COMMIT", ()) from exc


def begin_unless_begun(connection: Connection) -> None:
    """SQLAlchemy's "begin" on the on-loop connection: BEGIN IMMEDIATE, unless ``transaction`` began one already."""
    driver: sqlite3.Connection = connection.connection.dbapi_connection  # type: ignore[assignment]
    if not driver.in_transaction:
        driver.execute("BEGIN IMMEDIATE")


def _as_sqlalchemy(exc: sqlite3.Error, sql: str, params: Sequence[Any]) -> DBAPIError:
    """The driver's error as SQLAlchemy raises it (OperationalError, IntegrityError, ...): callers catch those."""
    error = DBAPIError.instance(sql, list(params), exc, sqlite3.Error)
    assert isinstance(error, DBAPIError)  # a driver error always maps to one
    return error
