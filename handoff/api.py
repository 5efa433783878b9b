"""The relay's REST API (one blueprint): agent login. Errors use the same {code, message} shape as the sockets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from common.errors import Unauthorized, WrongLogin
from handoff.auth import ROLES, BadCredentials, bearer_token, change_password, login, logout
from handoff.rest import body, logged_in, token_idle

api = Blueprint("api", url_prefix="/api")


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=200)

    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class PasswordBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=200)

    current_password: str = Field(min_length=1)
    new_password: str = Field(min_length=8)


def client_address(request: Request) -> str:
    """The caller's address: the peer's, or what the trusted proxies say (WARMLINE_PROXIES_COUNT)."""
    return str(request.remote_addr or request.ip)


@api.post("/agent/login")
async def agent_login(request: Request) -> HTTPResponse:
    """Limited per address (every attempt) and per account (failures only; the windows grow, so does the lockout)."""
    credentials = body(request, LoginBody)
    limiter = request.app.ctx.limiter
    account = credentials.username.strip().lower()
    await limiter.hit(limiter.limits.login_address, "login", "address", client_address(request))
    await limiter.check(limiter.limits.login_failures, "login", "account", account)
    async with request.app.ctx.sessions() as s, s.begin():
        try:
            agent, token = await login(s, credentials.username, credentials.password, token_idle(request))
        except BadCredentials as exc:
            await limiter.count(limiter.limits.login_failures, "login", "account", account)
            raise WrongLogin() from exc
    await limiter.clear(limiter.limits.login_failures, "login", "account", account)
    return response.json(
        {"token": token, "agent": {"id": agent.id, "name": agent.name, "username": agent.username, "role": agent.role}}
    )


@api.post("/agent/logout")
async def agent_logout(request: Request) -> HTTPResponse:
    """This login ends (its token stops working at once, on every relay process)."""
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise Unauthorized()
    async with request.app.ctx.sessions() as s, s.begin():
        await logout(s, token)
    return response.json({"ok": True})


@api.post("/agent/password")
async def agent_password(request: Request) -> HTTPResponse:
    """Change my password; every other login of mine ends (this one goes on)."""
    change = body(request, PasswordBody)
    token = bearer_token(request.headers.get("authorization", ""))
    async with request.app.ctx.sessions() as s, s.begin():
        agent = await logged_in(request, s, ROLES, "")
        assert token is not None
        try:
            await change_password(s, agent, change.current_password, change.new_password, token)
        except BadCredentials as exc:
            raise WrongLogin("Your current password is not right.") from exc
    return response.json({"ok": True})
