"""The relay's REST API (one blueprint): agent login. Errors use the same {code, message} shape as the sockets."""

from __future__ import annotations

from pydantic import ValidationError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from handoff.auth import BadCredentials, login
from handoff.events import LoginBody
from handoff.guard import validation_message

api = Blueprint("api", url_prefix="/api")


def error(status: int, code: str, message: str) -> HTTPResponse:
    return response.json({"error": {"code": code, "message": message}}, status=status)


@api.post("/agent/login")
async def agent_login(request: Request) -> HTTPResponse:
    try:
        body = LoginBody.model_validate(request.json if isinstance(request.json, dict) else {})
    except ValidationError as exc:
        return error(400, "invalid_payload", validation_message(exc))
    async with request.app.ctx.sessions() as s, s.begin():
        try:
            agent, token = await login(s, body.username, body.password)
        except BadCredentials:
            return error(401, "bad_credentials", "Wrong username or password.")
    return response.json({"token": token, "agent": {"id": agent.id, "name": agent.name, "username": agent.username, "role": agent.role}})
