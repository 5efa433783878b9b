"""Reports: the rows of a period read from the database, the figures computed by ``handoff.metrics_calc``.

``load_rows`` reads what a report needs (each table through one indexed range query, SQLAlchemy Core: no ORM
objects for tens of thousands of rows) and ``build`` turns them into the figures. ``summarize`` / ``load`` are the
older handle-time summary (per agent, and for the stretches that began with a transfer) kept for the Admin tab.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import mean

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff import metrics_calc as mc
from handoff.models import Agent, ChatRating, Conversation, KbAnswer, Message, Ticket, TicketSegment


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
    after = [i for i, g in enumerate(ordered) if i > 0 and ordered[i - 1].ticket_id == g.ticket_id]
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
        "avg_handle_after_transfer_s": avg([seconds[i] for i in after]),
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
    since = datetime.now(UTC) - timedelta(days=days)
    rows = await s.execute(
        select(TicketSegment, Agent.name)
        .join(Agent, Agent.id == TicketSegment.agent_id)
        .where(TicketSegment.ended_at.is_not(None), TicketSegment.started_at >= since)
    )
    return [Segment(g.ticket_id, name, g.started_at, g.ended_at) for g, name in rows.all() if g.ended_at is not None]


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


async def load_rows(s: AsyncSession, period: Period, need: Sequence[str] = SECTIONS) -> mc.Rows:
    """The rows of ``period``: conversations by their start, tickets by their escalation, segments of those tickets,
    KB answers by when they were given, bot-only ratings by their conversation's start. The team filter applies to
    tickets (their team), segments (of those tickets) and answers (the article's team); conversations belong to no
    team (the bot answers everyone), so conversation figures are always site-wide."""
    c, t, g, a, r, m = (x.__table__ for x in (Conversation, Ticket, TicketSegment, KbAnswer, ChatRating, Message))
    rows: dict[str, list[object]] = {}
    if "conversations" in need:
        engaged = exists().where(m.c.conversation_id == c.c.id, m.c.sender == "customer")
        result = await s.execute(
            select(c.c.id, c.c.created_at, engaged).where(c.c.created_at >= period.start, c.c.created_at < period.end)
        )
        rows["conversations"] = [mc.ConversationRow(i, at, bool(e)) for i, at, e in result.all()]
    ticket_range = and_(t.c.created_at >= period.start, t.c.created_at < period.end)
    if period.team is not None:
        ticket_range = and_(ticket_range, t.c.team == period.team)
    if "tickets" in need:
        first_reply = (
            select(func.min(m.c.created_at))
            .where(m.c.conversation_id == t.c.conversation_id, m.c.sender == "agent", m.c.created_at >= t.c.accepted_at)
            .scalar_subquery()
        )
        article = Ticket.card["article_id"].as_string()
        result = await s.execute(
            select(
                t.c.id, t.c.conversation_id, t.c.created_at, t.c.accepted_at, t.c.resolved_at, t.c.reason, article,
                t.c.team, t.c.rating, first_reply,
            ).where(ticket_range)
        )  # fmt: skip
        rows["tickets"] = [mc.TicketRow(*row) for row in result.all()]
    if "segments" in need:
        result = await s.execute(
            select(g.c.ticket_id, g.c.agent_id, Agent.name, g.c.team, g.c.started_at, g.c.ended_at)
            .join(t, t.c.id == g.c.ticket_id)
            .join(Agent, Agent.id == g.c.agent_id)
            .where(ticket_range)
        )
        rows["segments"] = [mc.SegmentRow(*row) for row in result.all()]
    if "answers" in need:
        answer_range = and_(a.c.created_at >= period.start, a.c.created_at < period.end)
        if period.team is not None:
            answer_range = and_(answer_range, a.c.team == period.team)
        result = await s.execute(
            select(a.c.conversation_id, a.c.article_id, a.c.team, a.c.helpful, a.c.created_at).where(answer_range)
        )
        rows["answers"] = [mc.AnswerRow(*row) for row in result.all()]
    if "chat_ratings" in need:
        result = await s.execute(
            select(r.c.conversation_id, r.c.score)
            .join(c, c.c.id == r.c.conversation_id)
            .where(c.c.created_at >= period.start, c.c.created_at < period.end, r.c.score.is_not(None))
        )
        rows["chat_ratings"] = [mc.ChatRatingRow(i, score) for i, score in result.all()]
    return mc.Rows(**rows)  # type: ignore[arg-type]


async def build(s: AsyncSession, period: Period, csat_margin_pts: float, handle_margin_pct: float) -> mc.Report:
    return mc.report(await load_rows(s, period), csat_margin_pts, handle_margin_pct)
