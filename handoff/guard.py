"""Wrap Socket.IO handlers so any failure becomes a ``relay_error`` event and a negative ack, never a crash."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from pydantic import BaseModel, ValidationError

from common.errors import InvalidPayload, RelayError
from handoff import events

log = logging.getLogger(__name__)

Handler = Callable[[str, Any], Awaitable[dict[str, Any] | None]]


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
    return f"{where}: {first.get('msg', 'invalid').removeprefix('Value error, ')}"


def parse(model: type[BaseModel], data: Any) -> Any:
    """Validate a socket payload with its model; anything that is not an object counts as an empty one."""
    try:
        return model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise InvalidPayload(validation_message(exc)) from exc


def guard(sio: socketio.AsyncServer, namespace: str, name: str, handler: Handler) -> Handler:
    async def guarded(sid: str, data: Any = None) -> dict[str, Any] | None:
        try:
            return await handler(sid, data)
        except RelayError as exc:
            error = exc
        except Exception:
            log.exception("%s failed", name)
            error = RelayError()
        payload = error.payload(event=name)
        await sio.emit(events.RELAY_ERROR, payload, to=sid, namespace=namespace)
        return {"ok": False, "error": payload}

    return guarded
