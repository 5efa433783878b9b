"""Handle-time reporting from ``ticket_segments``: per agent, and for the stretches that began with a transfer.

``summarize`` is pure (plain rows in, numbers out); ``load`` reads the finished segments of a period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import mean

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.models import Agent, TicketSegment


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
