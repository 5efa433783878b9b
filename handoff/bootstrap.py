"""First start for newcomers: a demo administrator (and the default team) when the database has no admin yet."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from common.db import create_engine, session_factory
from handoff import teams
from handoff.auth import create_agent
from handoff.models import Agent

DEMO_ADMIN = "admin"


async def ensure_demo_admin(db_url: str, password: str | None = None) -> str | None:
    """Create ``admin`` (in the default team) if no admin exists; returns the password to print once, else None."""
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s, s.begin():
            default = await teams.default_team(s)
            if (await s.execute(select(Agent.id).where(Agent.role == "admin").limit(1))).first() is not None:
                return None
            if (await s.execute(select(Agent.id).where(Agent.username == DEMO_ADMIN))).first() is not None:
                return None  # never reset the password of an existing account called "admin"
            chosen = password or secrets.token_urlsafe(12)
            agent = await create_agent(s, DEMO_ADMIN, "Admin", chosen, role="admin")
            await teams.set_teams(s, agent.id, [default.name])
            return chosen
    finally:
        await engine.dispose()
