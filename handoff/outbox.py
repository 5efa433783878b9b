"""The one way the relay sends: ``Outbox.emit(event, payload, to=...)``. The event comes from the catalogue
(handoff/events.py), the payload must be that event's model, and the caller names the recipients (a socket id or a
room from handoff/conversation.py). Emit only after the change is committed."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from handoff.events import Direction, Event, wire

M = TypeVar("M", bound=BaseModel)


class Emitter(Protocol):
    """The part of ``socketio.AsyncServer`` the outbox uses (a recording fake in the handler tests)."""

    async def emit(
        self,
        event: str,
        data: Any = None,
        *,
        to: str | None = None,
        namespace: str | None = None,
        skip_sid: str | None = None,
    ) -> None: ...


class Outbox:
    def __init__(self, sio: Emitter) -> None:
        self._sio = sio

    async def emit(self, event: Event[M], payload: M, *, to: str, skip: str | None = None) -> None:
        """``skip``: a socket of the room that gets nothing (the sender, who has the payload in its ack already)."""
        if event.direction is not Direction.OUT:
            raise TypeError(f"{event.name} is not an outgoing event")
        if not isinstance(payload, event.model):
            raise TypeError(f"{event.name} carries {event.model.__name__}, not {type(payload).__name__}")
        await self._sio.emit(event.name, wire(payload), to=to, namespace=event.namespace, skip_sid=skip)
