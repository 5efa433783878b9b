"""Reports: the rows of a period read from the database, the figures computed by ``handoff.metrics_calc``.

``load_rows`` reads what a report needs (each table through one indexed range query, SQLAlchemy Core: no ORM
objects for tens of thousands of rows; conversations classified and counted by the database) and ``build`` turns
them into the figures. ``summarize`` / ``load`` are the Admin tab's older handle-time summary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Float, and_, cast, exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import reading
from handoff import metrics_calc as mc
from handoff.models import Agent, ChatRating, Conversation, KbAnswer, Message, Ticket, TicketSegment


# The Admin tab's handle-time summary (GET /api/admin/reports/handle-time): per agent, and for the stretches that
# began with a transfer.
@dataclass(frozen=True)
class Segment:
    ticket_id: int
    agent: str
    started_at: datetime
    ended_at: datetime


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite returns naive UTC


def summarize(segments: Sequence[Segment]) -> dict[str, object]:
    """Average handle time per agent, overall, and of the segments after a transfer (not a ticket's first)."""
    ordered = sorted(segments, key=lambda g: (g.ticket_id, _aware(g.started_at)))
    seconds = [(_aware(g.ended_at) - _aware(g.started_at)).total_seconds() for g in ordered]
    after = {i for i, g in enumerate(ordered) if i > 0 and ordered[i - 1].ticket_id == g.ticket_id}
    agents: dict[str, dict[str, list[float]]] = {}
    for i, g in enumerate(ordered):
        row = agents.setdefault(g.agent, {"all": [], "after_transfer": []})
        row["all"].append(seconds[i])
        if i in after:
            row["after_transfer"].append(seconds[i])

    def avg(values: list[float]) -> float | None:
        return round(mean(values), 1) if values else None

    return {
        "segments": len(ordered),
        "tickets": len({g.ticket_id for g in ordered}),
        "transferred_tickets": len({ordered[i].ticket_id for i in after}),
        "avg_handle_s": avg(seconds),
        "avg_handle_after_transfer_s": avg([seconds[i] for i in sorted(after)]),
        "agents": {
            name: {
                "segments": len(v["all"]),
                "avg_handle_s": avg(v["all"]),
                "avg_after_transfer_s": avg(v["after_transfer"]),
            }
            for name, v in sorted(agents.items())
        },
    }


async def load(s: AsyncSession, days: int = 30) -> list[Segment]:
    """The finished segments that started in the last ``days`` (columns only: no ORM object per segment)."""
    since = datetime.now(UTC) - timedelta(days=days)
    g = TicketSegment
    rows = await s.execute(
        select(g.ticket_id, Agent.name, g.started_at, g.ended_at)
        .join(Agent, Agent.id == g.agent_id)
        .where(g.ended_at.is_not(None), g.started_at >= since)
    )
    return [Segment(*row) for row in rows]


class Period(BaseModel):
    """A report's range, [start, end), and its team filter (None: every team)."""

    start: datetime
    end: datetime
    team: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        self.start, self.end = _aware(self.start), _aware(self.end)
        if self.end <= self.start:
            raise ValueError("the end of the range must come after its start")
        if self.end - self.start > timedelta(days=366):
            raise ValueError("a report covers at most 366 days")
        return self

    @classmethod
    def last_days(cls, days: int, team: str | None = None, now: datetime | None = None) -> Period:
        end = now or datetime.now(UTC)
        return cls(start=end - timedelta(days=days), end=end, team=team)


SECTIONS = ("conversations", "tickets", "segments", "answers", "chat_ratings")


def day_of(column: Any, dialect: str) -> Any:
    """The UTC day of a stored timestamp as 'YYYY-MM-DD' (SQLite stores UTC text; PostgreSQL converts)."""
    if dialect == "sqlite":
        return func.substr(column, 1, 10)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def seconds_between(start: Any, end: Any, dialect: str) -> Any:
    """``end - start`` in seconds, measured by the database (NULL if either is NULL)."""
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(func.extract("epoch", end - start), Float)  # extract() is numeric: a Decimal per value


def epoch_of(column: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return cast(func.extract("epoch", column), Float)


async def load_rows(s: AsyncSession, period: Period, need: Sequence[str] = SECTIONS) -> mc.Rows:
    return (await _load(s, period, need, tag_days=False))[0]


async def _load(
    s: AsyncSession, period: Period, need: Sequence[str], tag_days: bool
) -> tuple[mc.Rows, dict[str, list[str]]]:
    """The rows of ``period``: conversations by their start (classified and counted per day in SQL), tickets by their
    escalation, the segments of those tickets, KB answers by when they were given, bot-only ratings by their
    conversation's start. The team filter applies to tickets (their team), segments (of those tickets) and answers
    (the article's team); conversations belong to no team (the bot answers everyone), so conversation figures are
    always site-wide. Durations come back as seconds from the database: no timestamp is parsed in Python.

    With ``tag_days``, also the UTC day of each segment (its ticket's) and answer group, in ``days`` (the other
    rows carry their day): what the kept days below are split by."""
    dialect = s.bind.dialect.name
    days: dict[str, list[str]] = {}
    conn = await s.connection()  # Core statements straight on the connection: no ORM result machinery
    if dialect == "postgresql":
        # The correlated subqueries look expensive to the planner, so it JIT-compiles them: 200 ms of compiling per
        # query for a query that runs in less. And the classes are grouped in memory, not in a sort spilled to disk.
        await conn.execute(text("SET LOCAL jit = off"))
        await conn.execute(text("SET LOCAL work_mem = '32MB'"))
    c, t, g, a, r, m = (x.__table__ for x in (Conversation, Ticket, TicketSegment, KbAnswer, ChatRating, Message))
    rows: dict[str, list[Any]] = {}
    has_ticket = exists().where(t.c.conversation_id == c.c.id)
    if "conversations" in need:
        classes = (
            select(
                day_of(c.c.created_at, dialect).label("day"),
                # Any message means the customer wrote: the bot and the relay only ever speak in answer to one, so
                # a conversation's first message is always the customer's. (Any message is answered from the
                # messages index alone; "a customer message" would read each message row.)
                exists().where(m.c.conversation_id == c.c.id).label("engaged"),
                has_ticket.label("ticketed"),
                exists().where(a.c.conversation_id == c.c.id, a.c.helpful.is_(False)).label("said_no"),
            )
            .where(c.c.created_at >= period.start, c.c.created_at < period.end)
            .subquery()
        )
        # Each EXISTS is evaluated once per conversation: the database returns one row per class and day.
        keys = (classes.c.day, classes.c.engaged, classes.c.ticketed, classes.c.said_no)
        result = await conn.execute(select(*keys, func.count()).group_by(*keys))
        rows["conversations"] = [mc.ConversationGroup(d, bool(e), bool(k), bool(n), int(x)) for d, e, k, n, x in result]
    ticket_range = and_(t.c.created_at >= period.start, t.c.created_at < period.end)
    if period.team is not None:
        ticket_range = and_(ticket_range, t.c.team == period.team)
    if "tickets" in need:
        first_reply = (
            select(func.min(m.c.created_at))
            .where(m.c.conversation_id == t.c.conversation_id, m.c.sender == "agent", m.c.created_at >= t.c.accepted_at)
            .scalar_subquery()
        )
        last_answer = (
            select(a.c.article_id)
            .where(a.c.conversation_id == t.c.conversation_id, a.c.created_at <= t.c.created_at)
            .order_by(a.c.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        result = await conn.execute(
            select(
                t.c.id, day_of(t.c.created_at, dialect), t.c.reason, Ticket.card["article_id"].as_string(), t.c.team,
                t.c.rating, t.c.resolved_at.is_not(None), seconds_between(t.c.created_at, t.c.accepted_at, dialect),
                seconds_between(t.c.accepted_at, first_reply, dialect),
                seconds_between(t.c.accepted_at, t.c.resolved_at, dialect), last_answer,
            ).where(ticket_range)
        )  # fmt: skip
        rows["tickets"] = [mc.TicketRow._make(row) for row in result]
    if "segments" in need:
        result = await conn.execute(
            select(
                g.c.ticket_id, g.c.agent_id, Agent.name, g.c.team, epoch_of(g.c.started_at, dialect),
                seconds_between(g.c.started_at, g.c.ended_at, dialect), day_of(t.c.created_at, dialect),
            )
            .join(t, t.c.id == g.c.ticket_id)
            .join(Agent, Agent.id == g.c.agent_id)
            .where(ticket_range)
        )  # fmt: skip
        fetched = result.all()
        rows["segments"] = [mc.SegmentRow._make(row[:-1]) for row in fetched]
        if tag_days:
            days["segments"] = [row[-1] for row in fetched]
    if "answers" in need:
        answer_range = and_(a.c.created_at >= period.start, a.c.created_at < period.end)
        if period.team is not None:
            answer_range = and_(answer_range, a.c.team == period.team)
        answer_keys = (a.c.article_id, a.c.helpful, *((day_of(a.c.created_at, dialect),) if tag_days else ()))
        result = await conn.execute(select(*answer_keys, func.count()).where(answer_range).group_by(*answer_keys))
        fetched = result.all()
        rows["answers"] = [mc.AnswerGroup(row[0], row[1], int(row[-1])) for row in fetched]
        if tag_days:
            days["answers"] = [row[2] for row in fetched]
    if "chat_ratings" in need:
        rating_keys = (day_of(c.c.created_at, dialect), r.c.score, has_ticket)
        result = await conn.execute(
            select(*rating_keys, func.count())
            .select_from(r)
            .join(c, c.c.id == r.c.conversation_id)
            .where(c.c.created_at >= period.start, c.c.created_at < period.end, r.c.score.is_not(None))
            .group_by(*rating_keys)
        )
        rows["chat_ratings"] = [mc.ChatRatingGroup(d, int(score), bool(k), int(x)) for d, score, k, x in result]
    return mc.Rows(**rows), days


async def load_rows_concurrently(
    sessions: async_sessionmaker[AsyncSession], period: Period, need: Sequence[str] = SECTIONS
) -> mc.Rows:
    """``load_rows`` with each table's query on a connection of its own, all at once: the database works on them in
    parallel (PostgreSQL's backends, SQLite's reads in their driver threads) while Python turns finished ones into
    rows. Read-only sessions: on SQLite they do not queue behind the chat's writes."""

    async def one(section: str) -> mc.Rows:
        async with reading(sessions) as s:
            return await load_rows(s, period, [section])

    parts = await asyncio.gather(*(one(section) for section in need))
    return mc.Rows(**{section: getattr(part, section) for section, part in zip(need, parts, strict=True)})


# Finished days are kept: a day this far behind today has its chats closed and rated (what still changes, a late
# rating or a ticket left open for days, shows within KEEP_S). Each relay process keeps its own, per database,
# section, team filter and UTC day; a 30-day report then reads the last two or three days only.
SETTLED_AFTER = timedelta(days=2)
KEEP_S = 600.0
_kept: dict[tuple[str, str, str | None, str], tuple[float, list[Any]]] = {}


def forget_kept_days() -> None:
    """Drop every kept day (tests; the benchmark's cold runs)."""
    _kept.clear()


def _midnight(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def _kept_section(
    s: AsyncSession, database: str, start: datetime, end: datetime, team: str | None, section: str
) -> list[Any]:
    """One section's rows of the whole UTC days [start, end), from the kept days, reading the ones not kept (or
    kept too long) in one range query."""
    wanted = [(start + timedelta(days=i)).date().isoformat() for i in range((end - start).days)]
    clock = time.monotonic()
    for key in [k for k, (at, _) in _kept.items() if clock - at >= KEEP_S]:
        _kept.pop(key, None)  # stale: read again when asked, and not held meanwhile
    missing = [d for d in wanted if (database, section, team, d) not in _kept]
    if missing:
        first = datetime.fromisoformat(missing[0]).replace(tzinfo=UTC)
        last = datetime.fromisoformat(missing[-1]).replace(tzinfo=UTC) + timedelta(days=1)
        rows, days = await _load(s, Period(start=first, end=last, team=team), [section], tag_days=True)
        found: dict[str, list[Any]] = {d: [] for d in missing}
        listed = getattr(rows, section)
        for row, day in zip(listed, days.get(section) or [row.day for row in listed], strict=True):
            if day in found:
                found[day].append(row)
        for day, day_rows in found.items():
            _kept[(database, section, team, day)] = (clock, day_rows)
    return [row for d in wanted for row in _kept[(database, section, team, d)][1]]


async def rows_for(
    sessions: async_sessionmaker[AsyncSession],
    period: Period,
    need: Sequence[str] = SECTIONS,
    now: datetime | None = None,
) -> mc.Rows:
    """The rows of ``period``: whole days settled for SETTLED_AFTER from the kept days, the rest (today, the last
    days, a partial first day) read now. Each section on a connection of its own, all sections at once (SQLite's
    driver threads and PostgreSQL's backends run them in parallel: 0.25 s against 0.43 s one after the other with
    100,000 conversations in the range); one connection per section keeps a report within the pool. Each section
    sees its own snapshot: a ticket opened in between may be in one and not another, for one refresh of the page."""
    cutoff = _midnight(now or datetime.now(UTC)) - SETTLED_AFTER
    first_whole = _midnight(period.start)
    if first_whole < period.start:
        first_whole += timedelta(days=1)
    kept_end = min(_midnight(period.end), cutoff)
    keep = kept_end > first_whole
    live = [period]
    if keep:
        live = []
        if period.start < first_whole:
            live.append(period.model_copy(update={"end": first_whole}))
        if kept_end < period.end:
            live.append(period.model_copy(update={"start": kept_end}))
    database = str(sessions.kw["bind"].url)

    async def section_rows(section: str) -> list[Any]:
        async with reading(sessions) as s:
            found = await _kept_section(s, database, first_whole, kept_end, period.team, section) if keep else []
            for piece in live:
                found += getattr(await load_rows(s, piece, [section]), section)
            return found

    lists = await asyncio.gather(*(section_rows(section) for section in need))
    return mc.Rows(**dict(zip(need, lists, strict=True)))


async def build(
    sessions: async_sessionmaker[AsyncSession], period: Period, csat_margin_pts: float, handle_margin_pct: float
) -> mc.Report:
    rows = await rows_for(sessions, period)
    # A tenth of a second of arithmetic with 100,000 conversations: off the event loop, so chats keep flowing.
    return await asyncio.to_thread(mc.report, rows, csat_margin_pts, handle_margin_pct)
