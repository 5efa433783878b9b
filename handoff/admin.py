"""REST for administrators (``/api/admin``): agents (role, capacity, teams), teams (business hours), canned responses.

Every route needs ``Authorization: Bearer <token>`` of an agent whose role is ``admin`` (checked before the body
is read); errors are raised from ``common.errors`` and answered as ``{"error": {code, message}}`` like the rest of
the API (``handoff.rest``). Bodies are pydantic models, changes go through ``handoff.auth`` / ``handoff.teams``,
one transaction per request.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import InvalidPayload, NotFound
from handoff import rest, teams
from handoff.auth import ROLES, create_agent, hash_password_async, revoke_tokens
from handoff.models import Agent, CannedResponse, Team
from handoff.rest import logged_in

admin = Blueprint("admin", url_prefix="/api/admin")


@admin.on_response
async def forget_cached_context(request: Request, reply: HTTPResponse) -> None:
    """Agents, teams and canned responses are cached for the copilot's suggestions (handoff/copilot.py): a change
    made here shows in them at once."""
    if request.method != "GET" and reply.status < 400:
        request.app.ctx.copilot.forget_context()


SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class Hours(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tz: str = "UTC"
    days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], max_length=7)  # Monday = 0
    start: str = Field(default="09:00", pattern=HHMM)
    end: str = Field(default="17:00", pattern=HHMM)

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class TeamBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=120)

    name: str = Field(pattern=SLUG.pattern)
    title: str = Field(min_length=1)
    hours: Hours | None = None  # None: always open
    is_default: bool = False


class AgentBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=200)

    username: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=8)
    role: str = Field(default="agent", pattern="^(agent|editor|admin)$")
    capacity: int = Field(default=3, ge=1, le=50)
    teams: list[str] = []


class AgentPatch(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=200)

    name: str | None = Field(default=None, min_length=1, max_length=120)
    password: str | None = Field(default=None, min_length=8)
    role: str | None = Field(default=None, pattern="^(agent|editor|admin)$")
    capacity: int | None = Field(default=None, ge=1, le=50)
    teams: list[str] | None = None


class CannedBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    shortcut: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=4000)
    team: str | None = None  # None: shared by every team


async def _admin(request: Request, s: AsyncSession) -> Agent:
    return await logged_in(request, s, ("admin",), "Only administrators can do this.")


async def agent_view(s: AsyncSession, agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id, "username": agent.username, "name": agent.name, "role": agent.role,
        "presence": agent.presence, "capacity": agent.capacity, "teams": sorted(await teams.teams_of(s, agent.id)),
    }  # fmt: skip


def team_view(team: Team) -> dict[str, Any]:
    return {"id": team.id, "name": team.name, "title": team.title, "is_default": team.is_default, "hours": team.hours}


@admin.get("/agents")
async def list_agents(request: Request) -> HTTPResponse:
    async with request.app.ctx.sessions() as s:
        await _admin(request, s)
        agents = list((await s.execute(select(Agent).order_by(Agent.username))).scalars())
        return response.json({"agents": [await agent_view(s, a) for a in agents]})


@admin.post("/agents")
async def add_agent(request: Request) -> HTTPResponse:
    async with request.app.ctx.sessions() as s, s.begin():
        await _admin(request, s)
        body = rest.body(request, AgentBody)
        try:
            agent = await create_agent(s, body.username, body.name, body.password, body.role)
            agent.capacity = body.capacity
            await teams.set_teams(s, agent.id, body.teams)
        except ValueError as exc:
            raise InvalidPayload(str(exc)) from exc
        return response.json({"agent": await agent_view(s, agent)}, status=201)


@admin.patch("/agents/<agent_id:int>")
async def change_agent(request: Request, agent_id: int) -> HTTPResponse:
    async with request.app.ctx.sessions() as s, s.begin():
        await _admin(request, s)
        body = rest.body(request, AgentPatch)
        agent = await s.get(Agent, agent_id)
        if agent is None:
            raise NotFound("No such agent.")
        if body.role is not None and body.role not in ROLES:
            raise InvalidPayload("unknown role")
        for field in ("name", "role", "capacity"):
            if (value := getattr(body, field)) is not None:
                setattr(agent, field, value)
        if body.password is not None:
            agent.password_hash = await hash_password_async(body.password)
            await revoke_tokens(s, agent.id)  # a reset password ends every login of the account
        if body.teams is not None:
            try:
                await teams.set_teams(s, agent.id, body.teams)
            except ValueError as exc:
                raise InvalidPayload(str(exc)) from exc
        return response.json({"agent": await agent_view(s, agent)})


@admin.get("/teams")
async def list_teams(request: Request) -> HTTPResponse:
    async with request.app.ctx.sessions() as s:
        await _admin(request, s)
        return response.json({"teams": [team_view(t) for t in await teams.all_teams(s)]})


@admin.post("/teams")
async def save_team(request: Request) -> HTTPResponse:
    """Create a team, or update the one with this name (title, business hours, default)."""
    async with request.app.ctx.sessions() as s, s.begin():
        await _admin(request, s)
        body = rest.body(request, TeamBody)
        hours = body.hours.model_dump() if body.hours else None
        team = await teams.save_team(s, body.name, body.title, hours, body.is_default)
        return response.json({"team": team_view(team)}, status=201)


@admin.get("/canned")
async def list_canned(request: Request) -> HTTPResponse:
    async with request.app.ctx.sessions() as s:
        await _admin(request, s)
        responses = await teams.canned_responses(s)
        items = [
            {"id": c.id, "shortcut": c.shortcut, "title": c.title, "body": c.body, "team": c.team} for c in responses
        ]
        return response.json({"canned": items})


@admin.post("/canned")
async def add_canned(request: Request) -> HTTPResponse:
    async with request.app.ctx.sessions() as s, s.begin():
        await _admin(request, s)
        body = rest.body(request, CannedBody)
        team = await teams.by_name(s, body.team) if body.team else None
        if body.team and team is None:
            raise InvalidPayload(f"unknown team {body.team!r}")
        row = CannedResponse(
            shortcut=body.shortcut, title=body.title, body=body.body, team_id=team.id if team else None
        )
        s.add(row)
        await s.flush()
        return response.json(
            {
                "canned": {
                    "id": row.id,
                    "shortcut": row.shortcut,
                    "title": row.title,
                    "body": row.body,
                    "team": body.team,
                }
            },
            status=201,
        )


@admin.delete("/canned/<canned_id:int>")
async def delete_canned(request: Request, canned_id: int) -> HTTPResponse:
    async with request.app.ctx.sessions() as s, s.begin():
        await _admin(request, s)
        row = await s.get(CannedResponse, canned_id)
        if row is None:
            raise NotFound("No such canned response.")
        await s.delete(row)
        return response.json({"ok": True})
