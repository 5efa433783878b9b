"""Registering socket handlers: validation with the event's model, and any failure turned into a ``relay_error``
event and a negative acknowledgement, never a crash."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import socketio
from pydantic import BaseModel, ValidationError

from common.errors import InvalidPayload, RelayError
from handoff import events
from handoff.outbox import Outbox

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[str, Any], Awaitable[dict[str, Any] | None]]


class Registrar(Protocol):
    """The part of ``socketio.AsyncServer`` that registers handlers."""

    def on(self, event: str, handler: Any = None, namespace: str | None = None) -> Any: ...


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
    return f"{where}: {first.get('msg', 'invalid').removeprefix('Value error, ')}"


def parse(model: type[M], data: Any) -> M:
    """Validate a socket payload with its model; anything that is not an object counts as an empty one."""
    try:
        return model.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise InvalidPayload(validation_message(exc)) from exc


Gate = Callable[[str, events.Event[Any]], Awaitable[None]]


def guard(outbox: Outbox, event: events.Event[Any], handler: Handler, gate: Gate | None = None) -> Handler:
    """``gate`` runs first (the rate limits): what it refuses never reaches the handler, so nothing is stored."""
    error_event = events.RELAY_ERROR if event.namespace == events.CUSTOMER_NAMESPACE else events.AGENT_RELAY_ERROR

    async def guarded(sid: str, *args: Any) -> dict[str, Any] | None:
        try:
            if gate is not None:
                await gate(sid, event)
            if len(args) > 1:  # python-socketio passes every argument the client sent; each event takes one object
                raise InvalidPayload(f"{event.name} takes one object, not {len(args)} arguments")
            return await handler(sid, args[0] if args else None)
        except RelayError as exc:
            error = exc
        except KeyError as exc:
            if "Session not found" not in str(exc):
                log.exception("%s failed", event.name)
            else:  # the socket went away while its event was handled: nobody is left to answer
                log.info("%s: the socket %s disconnected meanwhile", event.name, sid)
                return None
            error = RelayError()
        except Exception:
            log.exception("%s failed", event.name)
            error = RelayError()
        payload = error.payload(event=event.name)
        await outbox.emit(error_event, events.ErrorPayload.model_validate(payload), to=sid)
        return {"ok": False, "error": payload}

    return guarded


def register(
    sio: Registrar, outbox: Outbox, handlers: list[tuple[events.Event[Any], Handler]], gate: Gate | None = None
) -> None:
    """One place per side registers its handlers, each by an incoming event of the catalogue."""
    for event, handler in handlers:
        if event.direction is not events.Direction.IN:
            raise TypeError(f"{event.name} is not an incoming event")
        sio.on(event.name, guard(outbox, event, handler, gate), namespace=event.namespace)


def refuse(error: RelayError) -> socketio.exceptions.ConnectionRefusedError:
    """A connect handler's refusal: the client's ``connect_error`` gets the message and, as ``data``, the usual
    ``{code, message}`` (python-socketio sends a single argument as the message only)."""
    return socketio.exceptions.ConnectionRefusedError(error.message, error.payload())
