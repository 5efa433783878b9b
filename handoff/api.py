"""The relay's REST API (one blueprint): agent login. Errors use the same {code, message} shape as the sockets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from common.errors import WrongLogin
from handoff.auth import BadCredentials, login
from handoff.rest import body

api = Blueprint("api", url_prefix="/api")


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=200)

    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


@api.post("/agent/login")
async def agent_login(request: Request) -> HTTPResponse:
    credentials = body(request, LoginBody)
    async with request.app.ctx.sessions() as s, s.begin():
        try:
            agent, token = await login(s, credentials.username, credentials.password)
        except BadCredentials as exc:
            raise WrongLogin() from exc
    return response.json(
        {"token": token, "agent": {"id": agent.id, "name": agent.name, "username": agent.username, "role": agent.role}}
    )
