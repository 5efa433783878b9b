"""What a support lead measures, as pure functions: stored rows in, figures out (no database, no clock).

``handoff/reports.py`` loads the rows of a date range: each conversation classified (did the customer write, did
it escalate, did they say "no") and counted by class and day, each ticket and segment with its durations measured
by the database, KB answers counted per article and reply. Everything here is deterministic and unit-tested on
scripted conversations whose answers are known (tests/test_reports_metrics.py; tests/test_reports_feedback.py
stores the same conversations as real rows and reads them back). Rows are named tuples: tens of thousands are made
per report, and a tuple is made several times faster than a dataclass. Definitions (also in docs/reports.md):

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
from functools import cached_property
from typing import NamedTuple

from pydantic import BaseModel


class ConversationGroup(NamedTuple):
    """Conversations of one UTC day that share a class; a scripted conversation is a group of one."""

    day: str  # YYYY-MM-DD
    engaged: bool  # the customer wrote at least one message
    ticketed: bool  # it escalated (has a ticket)
    said_no: bool  # the customer answered "no" to "Did that answer your question?"
    conversations: int = 1


class ChatRatingGroup(NamedTuple):
    """Ratings of bot-only chats (``chat_ratings``) of conversations started on ``day``."""

    day: str
    score: int
    ticketed: bool  # the conversation escalated after all: not a bot-only chat
    ratings: int = 1


class AnswerGroup(NamedTuple):
    """KB answers given of one article, by what the customer said to them (None: nothing)."""

    article_id: str
    helpful: bool | None
    answers: int = 1


class TicketRow(NamedTuple):
    id: int
    day: str  # of the escalation
    reason: str
    article_id: str | None  # the article the escalation came from (its card)
    team: str | None
    rating: int | None
    resolved: bool
    seat_s: float | None  # escalation -> the first agent joined
    first_reply_s: float | None  # the agent joined -> their first message
    handle_s: float | None  # the agent joined -> resolved
    answered_article: str | None = None  # the conversation's last KB answer before the escalation


class SegmentRow(NamedTuple):
    ticket_id: int
    agent_id: int
    agent: str
    team: str | None
    started: float  # epoch seconds: orders a ticket's segments
    seconds: float | None  # None while the agent still has it


@dataclass(frozen=True)
class Rows:
    conversations: Sequence[ConversationGroup] = ()
    tickets: Sequence[TicketRow] = ()
    segments: Sequence[SegmentRow] = ()
    answers: Sequence[AnswerGroup] = ()
    chat_ratings: Sequence[ChatRatingGroup] = ()

    @cached_property
    def chains(self) -> dict[int, list[SegmentRow]]:
        """Each ticket's segments in the order they started (worked out once per report)."""
        return _chains(self.segments)


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


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of the values at or below it."""
    return _ranked(sorted(values), p)


def _ranked(ordered: Sequence[float], p: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def durations(values: Sequence[float]) -> Durations:
    ordered = sorted(values)
    return Durations(
        count=len(ordered),
        p50_s=_r(_ranked(ordered, 50)),
        p90_s=_r(_ranked(ordered, 90)),
        mean_s=_r(sum(ordered) / len(ordered)) if ordered else None,
    )


def csat(scores: Counter[int] | Sequence[int], rateable: int) -> Csat:
    """From scores, or from a Counter of score -> how many."""
    counts = scores if isinstance(scores, Counter) else Counter(scores)
    n = sum(counts.values())
    return Csat(
        ratings=n,
        rateable=rateable,
        response_rate=round(n / rateable, 4) if rateable else None,
        csat=round(sum(c for score, c in counts.items() if score >= 4) / n, 4) if n else None,
        mean_score=round(sum(score * c for score, c in counts.items()) / n, 3) if n else None,
    )


def _chains(segments: Iterable[SegmentRow]) -> dict[int, list[SegmentRow]]:
    by_ticket: dict[int, list[SegmentRow]] = defaultdict(list)
    for g in segments:
        by_ticket[g.ticket_id].append(g)
    for chain in by_ticket.values():
        if len(chain) > 1:
            chain.sort(key=lambda g: g.started)
    return by_ticket


def is_transferred(chain: Sequence[SegmentRow]) -> bool:
    return len(chain) > 1


def deflected(g: ConversationGroup) -> bool:
    return g.engaged and not g.ticketed and not g.said_no


def bot_only(g: ConversationGroup) -> bool:
    return g.engaged and not g.ticketed


def overview(rows: Rows) -> Overview:
    engaged = sum(g.conversations for g in rows.conversations if g.engaged)
    kept = sum(g.conversations for g in rows.conversations if deflected(g))
    return Overview(
        conversations=engaged,
        deflected=kept,
        deflection_rate=round(kept / engaged, 4) if engaged else None,
        escalations=len(rows.tickets),
        said_no=sum(g.conversations for g in rows.conversations if g.engaged and g.said_no),
    )


def _bot_scores(groups: Iterable[ChatRatingGroup]) -> Counter[int]:
    scores: Counter[int] = Counter()
    for r in groups:
        if not r.ticketed:
            scores[r.score] += r.ratings
    return scores


def _ticket_scores(tickets: Iterable[TicketRow]) -> Counter[int]:
    return Counter(t.rating for t in tickets if t.rating is not None)


def csat_by_kind(rows: Rows) -> CsatByKind:
    chains = rows.chains
    resolved = [t for t in rows.tickets if t.resolved]
    escalated = [t for t in resolved if not is_transferred(chains.get(t.id, []))]
    transferred = [t for t in resolved if is_transferred(chains.get(t.id, []))]
    return CsatByKind(
        bot_only=csat(_bot_scores(rows.chat_ratings), sum(g.conversations for g in rows.conversations if bot_only(g))),
        escalated=csat(_ticket_scores(escalated), len(escalated)),
        transferred=csat(_ticket_scores(transferred), len(transferred)),
    )


def transfer_handle(rows: Rows) -> TransferHandle:
    """Finished segments: each ticket's first one against those that began with a transfer."""
    first: list[float] = []
    after: list[float] = []
    chains = rows.chains
    for chain in chains.values():
        for i, g in enumerate(chain):
            if g.seconds is not None:
                (after if i > 0 else first).append(g.seconds)
    return TransferHandle(
        first_segments=durations(first),
        after_transfer=durations(after),
        transferred_tickets=sum(1 for chain in chains.values() if is_transferred(chain)),
    )


def handoff(rows: Rows) -> Handoff:
    return Handoff(
        time_to_seat=durations([t.seat_s for t in rows.tickets if t.seat_s is not None]),
        first_response=durations([t.first_reply_s for t in rows.tickets if t.first_reply_s is not None]),
        handle_time=durations([t.handle_s for t in rows.tickets if t.handle_s is not None]),
        transfer=transfer_handle(rows),
    )


def _counted(counts: Counter[str]) -> list[CountRow]:
    return [CountRow(key=k, count=n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def escalations_by_reason(tickets: Sequence[TicketRow]) -> list[CountRow]:
    return _counted(Counter(t.reason for t in tickets))


def escalations_by_article(tickets: Sequence[TicketRow]) -> list[CountRow]:
    return _counted(Counter(t.article_id for t in tickets if t.article_id))


def articles(rows: Rows) -> list[ArticleRow]:
    """Per article: answers given, yes / no, and escalations whose last KB answer before the ticket was this one."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for a in rows.answers:
        row = table[a.article_id]
        row[0] += a.answers
        row[1] += a.answers if a.helpful is True else 0
        row[2] += a.answers if a.helpful is False else 0
    for t in rows.tickets:
        if t.answered_article is not None:
            table[t.answered_article][3] += 1
    return [
        ArticleRow(article_id=k, answered=v[0], helpful_yes=v[1], helpful_no=v[2], escalated_after=v[3])
        for k, v in sorted(table.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]


def agents(rows: Rows) -> list[AgentRow]:
    """Per agent: their segments' handle time (and of those after a transfer), and the ratings of the tickets they
    resolved (the last segment's agent)."""
    tickets = {t.id: t for t in rows.tickets}
    names: dict[int, str] = {}
    handle: dict[int, list[float]] = defaultdict(list)
    after: dict[int, list[float]] = defaultdict(list)
    counts: Counter[int] = Counter()
    resolved: dict[int, list[TicketRow]] = defaultdict(list)
    for ticket_id, chain in rows.chains.items():
        for i, g in enumerate(chain):
            names[g.agent_id] = g.agent
            counts[g.agent_id] += 1
            if g.seconds is not None:
                handle[g.agent_id].append(g.seconds)
                if i > 0:
                    after[g.agent_id].append(g.seconds)
        ticket = tickets.get(ticket_id)
        if ticket is not None and ticket.resolved:
            resolved[chain[-1].agent_id].append(ticket)
    return [
        AgentRow(
            agent_id=agent_id,
            agent=names[agent_id],
            segments=counts[agent_id],
            resolved=len(resolved[agent_id]),
            handle=durations(handle[agent_id]),
            after_transfer=durations(after[agent_id]),
            csat=csat(_ticket_scores(resolved[agent_id]), len(resolved[agent_id])),
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
        resolved = [t for t in tickets if t.resolved]
        out.append(
            TeamRow(
                team=team,
                tickets=len(tickets),
                time_to_seat=durations([t.seat_s for t in tickets if t.seat_s is not None]),
                handle_time=durations([t.handle_s for t in tickets if t.handle_s is not None]),
                csat=csat(_ticket_scores(resolved), len(resolved)),
            )
        )
    return out


def daily(rows: Rows) -> list[DayRow]:
    """The figures over time, one row per UTC day that has any data (the day a chat started or escalated)."""
    chains = rows.chains
    days: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for g in rows.conversations:
        if g.engaged:
            counts[g.day]["conversations"] += g.conversations
            counts[g.day]["deflected"] += g.conversations if deflected(g) else 0
    for r in rows.chat_ratings:
        if not r.ticketed:
            days[r.day]["bot_only"].extend([float(r.score >= 4)] * r.ratings)
    for t in rows.tickets:
        d = days[t.day]
        counts[t.day]["escalations"] += 1
        if t.seat_s is not None:
            d["seat"].append(t.seat_s)
        if t.handle_s is not None:
            d["handle"].append(t.handle_s)
        if t.resolved and t.rating is not None:
            kind = "transferred" if is_transferred(chains.get(t.id, [])) else "escalated"
            d[kind].append(float(t.rating >= 4))

    def share(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return [
        DayRow(
            day=day,
            conversations=counts[day]["conversations"],
            deflected=counts[day]["deflected"],
            escalations=counts[day]["escalations"],
            csat_bot_only=share(days[day]["bot_only"]),
            csat_escalated=share(days[day]["escalated"]),
            csat_transferred=share(days[day]["transferred"]),
            time_to_seat_p50_s=_r(percentile(days[day]["seat"], 50)),
            handle_p50_s=_r(percentile(days[day]["handle"], 50)),
        )
        for day in sorted(set(days) | set(counts))
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


def handle_time_summary(rows: Rows) -> dict[str, object]:
    """The Admin tab's handle-time summary from segment rows: finished segments, their mean per agent, overall,
    and of those that began with a transfer (the same shape as ``handoff.reports.summarize``)."""

    def avg(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 1) if values else None

    every: list[float] = []
    after: list[float] = []
    tickets: set[int] = set()
    transferred: set[int] = set()
    per_agent: dict[str, dict[str, list[float]]] = {}
    for ticket_id, chain in rows.chains.items():
        for i, g in enumerate(chain):
            if g.seconds is None:
                continue
            tickets.add(ticket_id)
            every.append(g.seconds)
            mine = per_agent.setdefault(g.agent, {"all": [], "after_transfer": []})
            mine["all"].append(g.seconds)
            if i > 0:
                after.append(g.seconds)
                transferred.add(ticket_id)
                mine["after_transfer"].append(g.seconds)
    return {
        "segments": len(every),
        "tickets": len(tickets),
        "transferred_tickets": len(transferred),
        "avg_handle_s": avg(every),
        "avg_handle_after_transfer_s": avg(after),
        "agents": {
            name: {
                "segments": len(v["all"]),
                "avg_handle_s": avg(v["all"]),
                "avg_after_transfer_s": avg(v["after_transfer"]),
            }
            for name, v in sorted(per_agent.items())
        },
    }
