"""Agent accounts and logins: argon2id password hashes (argon2-cffi), opaque bearer tokens stored as hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoff.models import Agent, AgentToken

TOKEN_LIFETIME = timedelta(hours=12)  # one working shift; agents log in again the next day
_hasher = PasswordHasher()


class BadCredentials(Exception):
    """Unknown user or wrong password: deliberately indistinguishable to the caller."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


ROLES = ("agent", "editor", "admin")


async def create_agent(s: AsyncSession, username: str, name: str, password: str, role: str = "agent") -> Agent:
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    existing = (await s.execute(select(Agent).where(Agent.username == username))).scalar_one_or_none()
    if existing is not None:
        existing.name, existing.password_hash, existing.role = name, hash_password(password), role
        return existing
    agent = Agent(username=username, name=name, password_hash=hash_password(password), role=role)
    s.add(agent)
    await s.flush()
    return agent


async def login(s: AsyncSession, username: str, password: str) -> tuple[Agent, str]:
    agent = (await s.execute(select(Agent).where(Agent.username == username))).scalar_one_or_none()
    try:
        if agent is None:
            _hasher.hash(password)  # same work either way, so timing does not reveal which usernames exist
            raise BadCredentials()
        _hasher.verify(agent.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise BadCredentials() from exc
    token = secrets.token_urlsafe(32)
    s.add(AgentToken(token_hash=_token_hash(token), agent_id=agent.id, expires_at=datetime.now(UTC) + TOKEN_LIFETIME))
    return agent, token


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def agent_for_token(s: AsyncSession, token: str) -> Agent | None:
    row = await s.get(AgentToken, _token_hash(token))
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    if expires < datetime.now(UTC):
        return None
    return await s.get(Agent, row.agent_id)
