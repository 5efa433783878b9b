"""Routing decisions as pure functions over plain data: which team, which agent, open or closed, how long a wait.

No database and no sockets here (see docs/console.md): ``handoff.queues`` loads the plain data, calls these, and
acts on the answer. That keeps every rule unit-testable with a handful of dataclasses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from statistics import median
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Without any handled chat to learn from, assume a typical live-chat handle time.
DEFAULT_HANDLE_S = 300.0
# Only the recent past predicts the next wait; older chats were handled by a different shift.
RECENT_SEGMENTS = 50


@dataclass(frozen=True)
class TeamInfo:
    name: str
    is_default: bool = False
    hours: dict[str, object] | None = None  # {"tz", "days", "start", "end"}; None = always open


@dataclass(frozen=True)
class AgentLoad:
    agent_id: int
    presence: str  # online | away | offline
    capacity: int
    active: int  # chats assigned right now
    teams: frozenset[str] = field(default_factory=frozenset)

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.active)


@dataclass(frozen=True)
class Availability:
    status: str  # open | no_agents | closed
    opens_at: str | None = None  # for "closed": the next opening, e.g. "Mon 08:00 Europe/Paris"


def team_for(article_team: str | None, teams: Sequence[TeamInfo]) -> str:
    """The queue an escalation lands in: the article's team if it exists, else the default team."""
    names = {t.name for t in teams}
    if article_team and article_team in names:
        return article_team
    default = next((t for t in teams if t.is_default), None) or (teams[0] if teams else None)
    return default.name if default else "support"


def members(team: str, agents: Iterable[AgentLoad], default_team: str) -> list[AgentLoad]:
    """Agents of a team; an agent in no team at all works the default team (a fresh install has no memberships)."""
    return [a for a in agents if team in a.teams or (not a.teams and team == default_team)]


def pick_agent(candidates: Iterable[AgentLoad]) -> int | None:
    """The least-loaded online agent with free capacity; ties go to the most free slots, then the lowest id."""
    ready = [a for a in candidates if a.presence == "online" and a.free > 0]
    if not ready:
        return None
    best = min(ready, key=lambda a: (a.active / max(a.capacity, 1), -a.free, a.agent_id))
    return best.agent_id


def _parse_hhmm(value: object) -> time:
    hours, minutes = str(value).split(":")
    return time(int(hours), int(minutes))


def is_open(hours: dict[str, object] | None, now: datetime) -> bool:
    """Within the team's business hours? ``now`` must be timezone-aware. Malformed hours count as always open."""
    if not hours:
        return True
    try:
        zone = ZoneInfo(str(hours.get("tz") or "UTC"))
        start, end = _parse_hhmm(hours.get("start", "00:00")), _parse_hhmm(hours.get("end", "23:59"))
    except (ZoneInfoNotFoundError, ValueError):
        return True  # a typo in the settings must not close the help desk
    local = now.astimezone(zone)
    days = hours.get("days")
    if isinstance(days, list) and days and local.weekday() not in days:
        return False
    if start <= end:
        return start <= local.time() < end
    return local.time() >= start or local.time() < end  # overnight shift, e.g. 22:00-06:00


def availability(team: TeamInfo, team_agents: Sequence[AgentLoad], now: datetime) -> Availability:
    if not is_open(team.hours, now):
        hours = team.hours or {}
        return Availability("closed", f"{hours.get('start', '')}-{hours.get('end', '')} {hours.get('tz', 'UTC')}")
    if not any(a.presence == "online" for a in team_agents):
        return Availability("no_agents")
    return Availability("open")


def handle_time(durations_s: Sequence[float]) -> float:
    """Typical handle time from recent segments: the median, so one forgotten open chat does not skew it."""
    recent = [d for d in durations_s[-RECENT_SEGMENTS:] if d > 0]
    return float(median(recent)) if recent else DEFAULT_HANDLE_S


def estimate_wait_s(position: int, team_agents: Sequence[AgentLoad], handle_s: float) -> float | None:
    """Seconds until a ticket at ``position`` (1 = next) is likely taken; None when nobody is online to take it.

    Free slots are taken at once; beyond them, every online agent's slots turn over once per handle time.
    """
    online = [a for a in team_agents if a.presence == "online"]
    if not online:
        return None
    free = sum(a.free for a in online)
    if position <= free:
        return 0.0
    slots = sum(max(a.capacity, 1) for a in online)
    rounds = math.ceil((position - free) / slots)
    # A ticket waiting for a slot waits, on average, half a handle time per round (slots free up spread out).
    return rounds * handle_s / 2 if rounds == 1 else (rounds - 0.5) * handle_s


def wait_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return "in under a minute"
    return f"in about {math.ceil(seconds / 60)} min"


def plan_offers(queue: Sequence[tuple[int, int | None]], team_agents: Sequence[AgentLoad]) -> dict[int, int]:
    """New offers for a team's queue, given as (ticket_id, offered_to) oldest first.

    An offer to an agent still online stands (and occupies one of their slots); every other ticket, oldest first,
    is offered to the least-loaded online agent with a free slot, until no one has one: the rest wait.
    """
    by_id = {a.agent_id: a for a in team_agents}
    pending: dict[int, int] = {}
    for _, offered in queue:
        if offered is not None and offered in by_id and by_id[offered].presence == "online":
            pending[offered] = pending.get(offered, 0) + 1
    planned: dict[int, int] = {}
    for ticket_id, offered in queue:
        if offered is not None and offered in by_id and by_id[offered].presence == "online":
            continue
        loaded = [
            AgentLoad(a.agent_id, a.presence, a.capacity, a.active + pending.get(a.agent_id, 0), a.teams)
            for a in team_agents
        ]
        chosen = pick_agent(loaded)
        if chosen is None:
            break
        planned[ticket_id] = chosen
        pending[chosen] = pending.get(chosen, 0) + 1
    return planned
