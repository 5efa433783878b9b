"""Teams, memberships, presence and capacity: plain async functions over a session; the caller commits.

``loads`` turns the tables into the plain ``routing.AgentLoad`` / ``routing.TeamInfo`` data the routing rules take.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from handoff import tickets
from handoff.canned import Canned
from handoff.models import Agent, CannedResponse, Team, TeamMember
from handoff.routing import AgentLoad, TeamInfo

PRESENCE = ("online", "away", "offline")
DEFAULT_TEAM = "support"


def all_teams_in(s: Session) -> Sequence[Team]:
    return list(s.execute(select(Team).order_by(Team.name)).scalars())


async def all_teams(s: AsyncSession) -> Sequence[Team]:
    return await s.run_sync(all_teams_in)


async def canned_responses(s: AsyncSession) -> list[Canned]:
    """Every canned response with its team's name (None: shared by every team), for the console, the copilot and
    the admin API."""
    rows = await s.execute(select(CannedResponse, Team.name).outerjoin(Team, Team.id == CannedResponse.team_id))
    return [Canned(r.id, r.shortcut, r.title, r.body, team) for r, team in rows.all()]


async def team_infos(s: AsyncSession) -> list[TeamInfo]:
    return [TeamInfo(t.name, t.is_default, t.hours) for t in await all_teams(s)]


def by_name_in(s: Session, name: str) -> Team | None:
    return s.execute(select(Team).where(Team.name == name)).scalar_one_or_none()


async def by_name(s: AsyncSession, name: str) -> Team | None:
    return await s.run_sync(by_name_in, name)


def default_team_in(s: Session) -> Team:
    """The default team, created if an operator deleted it: escalations must always have somewhere to go."""
    team = s.execute(select(Team).where(Team.is_default.is_(True)).limit(1)).scalar_one_or_none()
    if team is None:
        team = by_name_in(s, DEFAULT_TEAM)
        if team is None:
            team = Team(name=DEFAULT_TEAM, title="Support", is_default=True)
            s.add(team)
        team.is_default = True
        s.flush()
    return team


async def default_team(s: AsyncSession) -> Team:
    return await s.run_sync(default_team_in)


async def save_team(s: AsyncSession, name: str, title: str, hours: dict[str, Any] | None, is_default: bool) -> Team:
    team = await by_name(s, name)
    if team is None:
        team = Team(name=name, title=title)
        s.add(team)
    team.title, team.hours = title, hours
    if is_default:
        for other in await all_teams(s):
            other.is_default = False
    team.is_default = is_default or team.is_default
    await s.flush()
    return team


def teams_of_in(s: Session, agent_id: int) -> set[str]:
    result = s.execute(
        select(Team.name).join(TeamMember, TeamMember.team_id == Team.id).where(TeamMember.agent_id == agent_id)
    )
    return set(result.scalars())


async def teams_of(s: AsyncSession, agent_id: int) -> set[str]:
    return await s.run_sync(teams_of_in, agent_id)


def working_teams_in(s: Session, agent_id: int) -> set[str]:
    """The queues an agent works: their teams, or the default team for an agent in none."""
    return teams_of_in(s, agent_id) or {default_team_in(s).name}


async def working_teams(s: AsyncSession, agent_id: int) -> set[str]:
    return await s.run_sync(working_teams_in, agent_id)


async def set_teams(s: AsyncSession, agent_id: int, names: Sequence[str]) -> set[str]:
    """Replace an agent's memberships; unknown team names raise ValueError (nothing is created by accident)."""
    wanted = {n for n in names}
    found = {t.name: t for t in await all_teams(s) if t.name in wanted}
    missing = wanted - set(found)
    if missing:
        raise ValueError(f"unknown team(s): {', '.join(sorted(missing))}")
    await s.execute(delete(TeamMember).where(TeamMember.agent_id == agent_id))
    for team in found.values():
        s.add(TeamMember(team_id=team.id, agent_id=agent_id))
    await s.flush()
    return wanted


async def set_presence(s: AsyncSession, agent_id: int, presence: str) -> None:
    if presence not in PRESENCE:
        raise ValueError(f"presence must be one of {', '.join(PRESENCE)}")
    agent = await s.get(Agent, agent_id)
    if agent is not None:
        agent.presence = presence


async def loads(s: AsyncSession) -> list[AgentLoad]:
    """Every agent's presence, capacity, open chats and teams, as routing's plain data."""
    agents = list((await s.execute(select(Agent))).scalars())
    active = await tickets.active_counts(s)
    members: dict[int, set[str]] = {}
    rows = await s.execute(select(TeamMember.agent_id, Team.name).join(Team, Team.id == TeamMember.team_id))
    for agent_id, name in rows.all():
        members.setdefault(int(agent_id), set()).add(str(name))
    return [
        AgentLoad(a.id, a.presence, a.capacity, active.get(a.id, 0), frozenset(members.get(a.id, set())))
        for a in agents
    ]
