"""What a support lead measures, as pure functions: stored rows in, figures out (no database, no clock).

``handoff/reports.py`` loads the rows of a date range; everything here is deterministic and unit-tested on scripted
conversations whose answers are known (tests/test_reports_metrics.py). Definitions (also in docs/reports.md):

- a *conversation* counts when the customer wrote at least one message in it (opening the widget is not a chat);
- *deflected*: a counted conversation with no ticket and no "no" to "Did that answer your question?";
- a ticket is *transferred* when it had more than one agent segment, else *escalated*;
- *CSAT* is the share of ratings that are 4 or 5 (with the mean score beside it); the *response rate* is ratings
  over rateable chats: bot-only conversations, or resolved tickets;
- percentiles are nearest-rank (the smallest value with at least p % of the values at or below it), so every figure
  is one of the measured durations.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel


@dataclass(frozen=True)
class ConversationRow:
    id: str
    created_at: datetime
    engaged: bool  # the customer wrote at least one message


@dataclass(frozen=True)
class TicketRow:
    id: int
    conversation_id: str
    created_at: datetime  # the escalation
    accepted_at: datetime | None  # the first agent joined
    resolved_at: datetime | None
    reason: str
    article_id: str | None
    team: str | None
    rating: int | None
    first_agent_reply_at: datetime | None  # the first agent message after accepted_at


@dataclass(frozen=True)
class SegmentRow:
    ticket_id: int
    agent_id: int
    agent: str
    team: str | None
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class AnswerRow:
    conversation_id: str
    article_id: str
    team: str | None
    helpful: bool | None
    created_at: datetime


@dataclass(frozen=True)
class ChatRatingRow:
    conversation_id: str
    score: int


@dataclass(frozen=True)
class Rows:
    conversations: Sequence[ConversationRow] = ()
    tickets: Sequence[TicketRow] = ()
    segments: Sequence[SegmentRow] = ()
    answers: Sequence[AnswerRow] = ()
    chat_ratings: Sequence[ChatRatingRow] = ()


class Durations(BaseModel):
    count: int
    p50_s: float | None
    p90_s: float | None
    mean_s: float | None


class Csat(BaseModel):
    ratings: int  # how many ratings
    rateable: int  # how many chats could have been rated
    response_rate: float | None  # ratings / rateable
    csat: float | None  # share of ratings that are 4 or 5
    mean_score: float | None


class Overview(BaseModel):
    conversations: int
    deflected: int
    deflection_rate: float | None
    escalations: int
    said_no: int  # conversations with at least one "no" to an answer


class TransferHandle(BaseModel):
    first_segments: Durations
    after_transfer: Durations
    transferred_tickets: int


class CsatByKind(BaseModel):
    bot_only: Csat
    escalated: Csat
    transferred: Csat


class Handoff(BaseModel):
    time_to_seat: Durations
    first_response: Durations
    handle_time: Durations  # agent joined -> resolved, whole ticket
    transfer: TransferHandle


class CountRow(BaseModel):
    key: str
    count: int


class ArticleRow(BaseModel):
    article_id: str
    answered: int
    helpful_yes: int
    helpful_no: int
    escalated_after: int


class AgentRow(BaseModel):
    agent_id: int
    agent: str
    segments: int
    resolved: int
    handle: Durations
    after_transfer: Durations
    csat: Csat


class TeamRow(BaseModel):
    team: str
    tickets: int
    time_to_seat: Durations
    handle_time: Durations
    csat: Csat


class DayRow(BaseModel):
    day: str  # YYYY-MM-DD, UTC
    conversations: int
    deflected: int
    escalations: int
    csat_bot_only: float | None
    csat_escalated: float | None
    csat_transferred: float | None
    time_to_seat_p50_s: float | None
    handle_p50_s: float | None


class HealthSide(BaseModel):
    label: str
    value: float | None
    count: int


class HealthCheck(BaseModel):
    name: str  # csat_escalated | csat_transferred | handle_time
    baseline: HealthSide  # bot-only CSAT, or first segments' handle time
    handoff: HealthSide  # escalated CSAT, or handle time after a transfer
    worse_by: float | None  # CSAT: percentage points lower; handle time: percent longer
    margin: float
    flagged: bool


class Health(BaseModel):
    checks: list[HealthCheck]
    flagged: bool


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite returns naive UTC


def seconds_between(start: datetime, end: datetime) -> float:
    return (_aware(end) - _aware(start)).total_seconds()


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def durations(values: Sequence[float]) -> Durations:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return Durations(
        count=len(values),
        p50_s=r(percentile(values, 50)),
        p90_s=r(percentile(values, 90)),
        mean_s=r(sum(values) / len(values)) if values else None,
    )


def csat(scores: Sequence[int], rateable: int) -> Csat:
    n = len(scores)
    return Csat(
        ratings=n,
        rateable=rateable,
        response_rate=round(n / rateable, 4) if rateable else None,
        csat=round(sum(1 for s in scores if s >= 4) / n, 4) if n else None,
        mean_score=round(sum(scores) / n, 3) if n else None,
    )


def _segments_by_ticket(segments: Iterable[SegmentRow]) -> dict[int, list[SegmentRow]]:
    by_ticket: dict[int, list[SegmentRow]] = defaultdict(list)
    for g in segments:
        by_ticket[g.ticket_id].append(g)
    for chain in by_ticket.values():
        chain.sort(key=lambda g: _aware(g.started_at))
    return by_ticket


def _ticketed(rows: Rows) -> set[str]:
    return {t.conversation_id for t in rows.tickets}


def _said_no(rows: Rows) -> set[str]:
    return {a.conversation_id for a in rows.answers if a.helpful is False}


def _bot_only(rows: Rows) -> list[ConversationRow]:
    ticketed = _ticketed(rows)
    return [c for c in rows.conversations if c.engaged and c.id not in ticketed]


def overview(rows: Rows) -> Overview:
    engaged = [c for c in rows.conversations if c.engaged]
    ticketed, said_no = _ticketed(rows), _said_no(rows)
    deflected = sum(1 for c in engaged if c.id not in ticketed and c.id not in said_no)
    return Overview(
        conversations=len(engaged),
        deflected=deflected,
        deflection_rate=round(deflected / len(engaged), 4) if engaged else None,
        escalations=len(rows.tickets),
        said_no=sum(1 for c in engaged if c.id in said_no),
    )


def is_transferred(chain: Sequence[SegmentRow]) -> bool:
    return len(chain) > 1


def csat_by_kind(rows: Rows) -> CsatByKind:
    bot_only = {c.id for c in _bot_only(rows)}
    chat_scores = [r.score for r in rows.chat_ratings if r.conversation_id in bot_only]
    chains = _segments_by_ticket(rows.segments)
    resolved = [t for t in rows.tickets if t.resolved_at is not None]
    escalated = [t for t in resolved if not is_transferred(chains.get(t.id, []))]
    transferred = [t for t in resolved if is_transferred(chains.get(t.id, []))]
    return CsatByKind(
        bot_only=csat(chat_scores, len(bot_only)),
        escalated=csat([t.rating for t in escalated if t.rating is not None], len(escalated)),
        transferred=csat([t.rating for t in transferred if t.rating is not None], len(transferred)),
    )


def _seat_times(tickets: Iterable[TicketRow]) -> list[float]:
    return [seconds_between(t.created_at, t.accepted_at) for t in tickets if t.accepted_at is not None]


def _handle_times(tickets: Iterable[TicketRow]) -> list[float]:
    return [
        seconds_between(t.accepted_at, t.resolved_at)
        for t in tickets
        if t.accepted_at is not None and t.resolved_at is not None
    ]


def transfer_handle(segments: Sequence[SegmentRow]) -> TransferHandle:
    """Finished segments: each ticket's first one against those that began with a transfer."""
    first: list[float] = []
    after: list[float] = []
    chains = _segments_by_ticket(segments)
    for chain in chains.values():
        for i, g in enumerate(chain):
            if g.ended_at is None:
                continue
            (after if i > 0 else first).append(seconds_between(g.started_at, g.ended_at))
    return TransferHandle(
        first_segments=durations(first),
        after_transfer=durations(after),
        transferred_tickets=sum(1 for chain in chains.values() if is_transferred(chain)),
    )


def handoff(rows: Rows) -> Handoff:
    replies = [
        seconds_between(t.accepted_at, t.first_agent_reply_at)
        for t in rows.tickets
        if t.accepted_at is not None and t.first_agent_reply_at is not None
    ]
    return Handoff(
        time_to_seat=durations(_seat_times(rows.tickets)),
        first_response=durations(replies),
        handle_time=durations(_handle_times(rows.tickets)),
        transfer=transfer_handle(rows.segments),
    )


def escalations_by_reason(tickets: Sequence[TicketRow]) -> list[CountRow]:
    counts = Counter(t.reason for t in tickets)
    return [CountRow(key=k, count=n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def escalations_by_article(tickets: Sequence[TicketRow]) -> list[CountRow]:
    counts = Counter(t.article_id for t in tickets if t.article_id)
    return [CountRow(key=k, count=n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def articles(rows: Rows) -> list[ArticleRow]:
    """Per article: answers given, yes / no, and escalations whose last KB answer before the ticket was this one."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_conversation: dict[str, list[AnswerRow]] = defaultdict(list)
    for a in rows.answers:
        row = table[a.article_id]
        row[0] += 1
        row[1] += a.helpful is True
        row[2] += a.helpful is False
        by_conversation[a.conversation_id].append(a)
    for t in rows.tickets:
        before = [a for a in by_conversation.get(t.conversation_id, ()) if _aware(a.created_at) <= _aware(t.created_at)]
        if before:
            table[max(before, key=lambda a: _aware(a.created_at)).article_id][3] += 1
    return [
        ArticleRow(article_id=k, answered=v[0], helpful_yes=v[1], helpful_no=v[2], escalated_after=v[3])
        for k, v in sorted(table.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]


def agents(rows: Rows) -> list[AgentRow]:
    """Per agent: their segments' handle time (and of those after a transfer), and the ratings of the tickets they
    resolved (the last segment's agent)."""
    tickets = {t.id: t for t in rows.tickets}
    chains = _segments_by_ticket(rows.segments)
    names: dict[int, str] = {}
    handle: dict[int, list[float]] = defaultdict(list)
    after: dict[int, list[float]] = defaultdict(list)
    counts: Counter[int] = Counter()
    resolved: dict[int, list[TicketRow]] = defaultdict(list)
    for ticket_id, chain in chains.items():
        for i, g in enumerate(chain):
            names[g.agent_id] = g.agent
            counts[g.agent_id] += 1
            if g.ended_at is not None:
                s = seconds_between(g.started_at, g.ended_at)
                handle[g.agent_id].append(s)
                if i > 0:
                    after[g.agent_id].append(s)
        ticket = tickets.get(ticket_id)
        if ticket is not None and ticket.resolved_at is not None:
            resolved[chain[-1].agent_id].append(ticket)
    return [
        AgentRow(
            agent_id=agent_id,
            agent=names[agent_id],
            segments=counts[agent_id],
            resolved=len(resolved[agent_id]),
            handle=durations(handle[agent_id]),
            after_transfer=durations(after[agent_id]),
            csat=csat([t.rating for t in resolved[agent_id] if t.rating is not None], len(resolved[agent_id])),
        )
        for agent_id in sorted(names, key=lambda a: (names[a], a))
    ]


def teams(rows: Rows) -> list[TeamRow]:
    """Per team (the ticket's team at the end: a transfer to a team moves it)."""
    by_team: dict[str, list[TicketRow]] = defaultdict(list)
    for t in rows.tickets:
        by_team[t.team or "(none)"].append(t)
    out = []
    for team, tickets in sorted(by_team.items()):
        resolved = [t for t in tickets if t.resolved_at is not None]
        out.append(
            TeamRow(
                team=team,
                tickets=len(tickets),
                time_to_seat=durations(_seat_times(tickets)),
                handle_time=durations(_handle_times(tickets)),
                csat=csat([t.rating for t in resolved if t.rating is not None], len(resolved)),
            )
        )
    return out


def _day(value: datetime) -> str:
    return _aware(value).date().isoformat()


def daily(rows: Rows) -> list[DayRow]:
    """The figures over time, one row per UTC day that has any data (the day a chat started or escalated)."""
    ticketed, said_no = _ticketed(rows), _said_no(rows)
    chains = _segments_by_ticket(rows.segments)
    bot_only = {c.id for c in _bot_only(rows)}
    conv_day = {c.id: _day(c.created_at) for c in rows.conversations}
    days: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in rows.conversations:
        if c.engaged:
            d = days[_day(c.created_at)]
            d["conversations"].append(1)
            if c.id not in ticketed and c.id not in said_no:
                d["deflected"].append(1)
    for r in rows.chat_ratings:
        if r.conversation_id in bot_only:
            days[conv_day[r.conversation_id]]["bot_only"].append(r.score >= 4)
    for t in rows.tickets:
        d = days[_day(t.created_at)]
        d["escalations"].append(1)
        if t.accepted_at is not None:
            d["seat"].append(seconds_between(t.created_at, t.accepted_at))
            if t.resolved_at is not None:
                d["handle"].append(seconds_between(t.accepted_at, t.resolved_at))
        if t.resolved_at is not None and t.rating is not None:
            kind = "transferred" if is_transferred(chains.get(t.id, [])) else "escalated"
            d[kind].append(t.rating >= 4)

    def share(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return [
        DayRow(
            day=day,
            conversations=len(d["conversations"]),
            deflected=len(d["deflected"]),
            escalations=len(d["escalations"]),
            csat_bot_only=share(d["bot_only"]),
            csat_escalated=share(d["escalated"]),
            csat_transferred=share(d["transferred"]),
            time_to_seat_p50_s=percentile(d["seat"], 50),
            handle_p50_s=percentile(d["handle"], 50),
        )
        for day, d in sorted(days.items())
    ]


def health(by_kind: CsatByKind, transfer: TransferHandle, csat_margin_pts: float, handle_margin_pct: float) -> Health:
    """CSAT of escalated chats against bot-only ones, handle time after a transfer against first segments; each is
    flagged when the handoff side is worse by more than its margin (percentage points of CSAT, percent of time)."""
    bot = by_kind.bot_only.csat

    def csat_check(name: str, label: str, side: Csat) -> HealthCheck:
        gap = round((bot - side.csat) * 100, 2) if bot is not None and side.csat is not None else None
        return HealthCheck(
            name=name,
            baseline=HealthSide(label="CSAT bot-only", value=bot, count=by_kind.bot_only.ratings),
            handoff=HealthSide(label=label, value=side.csat, count=side.ratings),
            worse_by=gap,
            margin=csat_margin_pts,
            flagged=gap is not None and gap > csat_margin_pts,
        )

    first, later = transfer.first_segments.mean_s, transfer.after_transfer.mean_s
    handle_gap = round((later - first) / first * 100, 2) if first and later is not None else None
    checks = [
        csat_check("csat_escalated", "CSAT escalated", by_kind.escalated),
        csat_check("csat_transferred", "CSAT transferred", by_kind.transferred),
        HealthCheck(
            name="handle_time",
            baseline=HealthSide(label="Handle time, first segments", value=first, count=transfer.first_segments.count),
            handoff=HealthSide(label="Handle time after a transfer", value=later, count=transfer.after_transfer.count),
            worse_by=handle_gap,
            margin=handle_margin_pct,
            flagged=handle_gap is not None and handle_gap > handle_margin_pct,
        ),
    ]
    return Health(checks=checks, flagged=any(c.flagged for c in checks))


class Report(BaseModel):
    """Every figure of the Reports page for one period (and team filter)."""

    overview: Overview
    csat: CsatByKind
    handoff: Handoff
    health: Health
    escalations_by_reason: list[CountRow]
    escalations_by_article: list[CountRow]
    articles: list[ArticleRow]
    agents: list[AgentRow]
    teams: list[TeamRow]
    daily: list[DayRow]


def report(rows: Rows, csat_margin_pts: float, handle_margin_pct: float) -> Report:
    by_kind = csat_by_kind(rows)
    hand = handoff(rows)
    return Report(
        overview=overview(rows),
        csat=by_kind,
        handoff=hand,
        health=health(by_kind, hand.transfer, csat_margin_pts, handle_margin_pct),
        escalations_by_reason=escalations_by_reason(rows.tickets),
        escalations_by_article=escalations_by_article(rows.tickets),
        articles=articles(rows),
        agents=agents(rows),
        teams=teams(rows),
        daily=daily(rows),
    )
