"""Agent accounts and logins: argon2id password hashes (argon2-cffi), opaque bearer tokens stored as hashes.

An argon2 hash or verify takes ~50 ms of CPU on purpose; it runs in a worker thread, so a flood of logins cannot
stall the chats on the relay's event loop. A token lasts ``idle`` after its last use (sliding); logging out revokes
it, and a new password revokes every other token of the account."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoff.models import Agent, AgentToken

TOKEN_IDLE = timedelta(hours=12)  # default of WARMLINE_TOKEN_IDLE_HOURS: a shift without using the console
# A token's expiry moves forward at most this often, so a busy console does not write on every request.
SLIDE_EVERY = timedelta(minutes=5)
_hasher = PasswordHasher()


class BadCredentials(Exception):
    """Unknown user or wrong password: deliberately indistinguishable to the caller."""


def hash_password(password: str) -> str:
    """Blocking (argon2): call it from a worker thread on the event loop (``hash_password_async``)."""
    return _hasher.hash(password)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


ROLES = ("agent", "editor", "admin")


async def create_agent(s: AsyncSession, username: str, name: str, password: str, role: str = "agent") -> Agent:
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    existing = (await s.execute(select(Agent).where(Agent.username == username))).scalar_one_or_none()
    password_hash = await hash_password_async(password)
    if existing is not None:  # a password reset: every login of the account ends
        existing.name, existing.password_hash, existing.role = name, password_hash, role
        await revoke_tokens(s, existing.id)
        return existing
    agent = Agent(username=username, name=name, password_hash=password_hash, role=role)
    s.add(agent)
    await s.flush()
    return agent


async def verify_password(agent: Agent | None, password: str) -> None:
    """Raises ``BadCredentials`` unless ``password`` is this agent's; the same work whether or not they exist,
    so timing does not reveal which usernames do."""
    try:
        if agent is None:
            await asyncio.to_thread(_hasher.hash, password)
            raise BadCredentials()
        await asyncio.to_thread(_hasher.verify, agent.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise BadCredentials() from exc


async def login(s: AsyncSession, username: str, password: str, idle: timedelta = TOKEN_IDLE) -> tuple[Agent, str]:
    agent = (await s.execute(select(Agent).where(Agent.username == username))).scalar_one_or_none()
    await verify_password(agent, password)
    assert agent is not None
    token = secrets.token_urlsafe(32)
    s.add(AgentToken(token_hash=_token_hash(token), agent_id=agent.id, expires_at=datetime.now(UTC) + idle))
    return agent, token


async def logout(s: AsyncSession, token: str) -> None:
    await s.execute(delete(AgentToken).where(AgentToken.token_hash == _token_hash(token)))


async def revoke_tokens(s: AsyncSession, agent_id: int, keep: str | None = None) -> None:
    """End every login of the account (but ``keep``, the one changing the password)."""
    query = delete(AgentToken).where(AgentToken.agent_id == agent_id)
    if keep is not None:
        query = query.where(AgentToken.token_hash != _token_hash(keep))
    await s.execute(query)


async def change_password(s: AsyncSession, agent: Agent, current: str, new: str, token: str) -> None:
    if len(new) < 8:
        raise ValueError("the password must have at least 8 characters")
    await verify_password(agent, current)
    agent.password_hash = await hash_password_async(new)
    await revoke_tokens(s, agent.id, keep=token)


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def token_state(s: AsyncSession, token: str, idle: timedelta = TOKEN_IDLE) -> tuple[Agent | None, bool]:
    """The token's agent (None if unknown or unused for longer than ``idle``), and whether its expiry is due to
    move on (``slide``). Reads only, so it works inside a read-only transaction."""
    row = await s.get(AgentToken, _token_hash(token))
    if row is None:
        return None, False
    now = datetime.now(UTC)
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    if expires < now:
        return None, False
    return await s.get(Agent, row.agent_id), now + idle - expires > SLIDE_EVERY


async def agent_for_token(s: AsyncSession, token: str, idle: timedelta = TOKEN_IDLE) -> Agent | None:
    return (await token_state(s, token, idle))[0]


_sliding: set[asyncio.Task[None]] = set()


def slide_later(sessions: async_sessionmaker[AsyncSession], token: str, idle: timedelta = TOKEN_IDLE) -> None:
    """Move the token's expiry on, in a transaction of its own once the caller's has ended (the caller may hold
    SQLite's write lock now: waiting for it here would wait for ourselves)."""
    task = asyncio.get_running_loop().create_task(slide(sessions, token, idle))
    _sliding.add(task)
    task.add_done_callback(_sliding.discard)


async def slide(sessions: async_sessionmaker[AsyncSession], token: str, idle: timedelta = TOKEN_IDLE) -> None:
    """A token was used: it now lasts ``idle`` from now."""
    async with sessions() as s, s.begin():
        await s.execute(
            update(AgentToken)
            .where(AgentToken.token_hash == _token_hash(token))
            .values(expires_at=datetime.now(UTC) + idle)
        )
