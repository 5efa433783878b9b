"""What every REST route of the relay shares: one error shape, one way to read a body or a query, one login check."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Forbidden, InvalidPayload, RelayError, Unauthorized
from handoff.auth import bearer_token, slide_later, token_state
from handoff.guard import validation_message
from handoff.models import Agent

B = TypeVar("B", bound=BaseModel)


async def on_error(_: Request, exc: RelayError) -> HTTPResponse:
    """The app's handler for every ``RelayError`` a route raises: ``{"error": {code, message}}`` with its status."""
    payload = exc.payload()
    retry = payload.get("retry_after")
    headers = {"Retry-After": str(retry)} if retry is not None else None
    return response.json({"error": payload}, status=exc.status, headers=headers)


def body(request: Request, model: type[B]) -> B:
    """The JSON body as ``model``; anything that is not an object counts as an empty one."""
    try:
        return model.model_validate(request.json if isinstance(request.json, dict) else {})
    except ValidationError as exc:
        raise InvalidPayload(validation_message(exc)) from exc


def query(request: Request, model: type[B]) -> B:
    """The query string as ``model`` (first value of each key; empty values left out)."""
    try:
        return model.model_validate({k: v[0] for k, v in request.args.items() if v and v[0] != ""})
    except ValidationError as exc:
        raise InvalidPayload(validation_message(exc)) from exc


async def logged_in(request: Request, s: AsyncSession, roles: Collection[str], denied: str) -> Agent:
    """The agent whose bearer token came with the request, if their role is one of ``roles``: else 401 or 403."""
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise Unauthorized()
    idle = token_idle(request)
    agent, due = await token_state(s, token, idle)
    if agent is None:
        raise Unauthorized("Your login has expired or is not valid; log in again.")
    if agent.role not in roles:
        raise Forbidden(denied)
    if due:
        slide_later(request.app.ctx.sessions, token, idle)
    return agent


def token_idle(request: Request) -> timedelta:
    return timedelta(hours=request.app.ctx.settings.token_idle_hours)
