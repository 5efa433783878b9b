"""Recording fakes of the relay's two outside parts, for handler tests that run in milliseconds: the Socket.IO
server (it records every emit and checks it against the event catalogue as it happens) and the bot client (it
answers from a script). The database stays real: a migrated SQLite file of the test's own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import BotUnavailable
from handoff import events
from handoff.bot_client import BotTurn

# The shapes of Rasa 3.6's SocketIOOutput (rasa/core/channels/socketio.py): what a Rasa widget can render.
RASA_SHAPES = frozenset({frozenset({"text"}), frozenset({"text", "quick_replies"}), frozenset({"attachment"})})


@dataclass(frozen=True)
class Emitted:
    event: str
    data: Any
    to: str | None
    namespace: str
    skip: str | None = None  # a socket of the room that was not sent it


def check_shape(namespace: str, name: str, data: Any, *, custom_ok: bool = False) -> None:
    """An emitted payload must be an outgoing event of the catalogue and survive its model unchanged."""
    event = events.outgoing(namespace, name)
    assert event is not None, f"{name} on {namespace} is not in the event catalogue"
    assert events.wire(event.model.model_validate(data)) == data, f"{name} does not match {event.model.__name__}"
    if event is events.BOT_UTTERED:
        keys = frozenset(data) - {"metadata"}
        assert custom_ok or keys in RASA_SHAPES, f"bot_uttered keys {sorted(keys)} are not a shape Rasa emits"
        meta = data["metadata"]
        assert {"message_id", "sender", "ts"} <= set(meta), meta


class RecordingSio:
    def __init__(self, custom_ok: bool = False) -> None:
        self.emitted: list[Emitted] = []
        self.handlers: dict[tuple[str, str], Callable[..., Awaitable[Any]]] = {}
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}
        self.rooms: dict[tuple[str, str], set[str]] = {}
        self.custom_ok = custom_ok
        self.manager = self

    # --- what handoff/ calls ---------------------------------------------------------------------------------
    def on(self, event: str, handler: Any = None, namespace: str | None = None) -> Any:
        self.handlers[(namespace or "/", event)] = handler

    async def emit(
        self,
        event: str,
        data: Any = None,
        *,
        to: str | None = None,
        namespace: str | None = None,
        skip_sid: str | None = None,
        **_: Any,
    ) -> None:
        check_shape(namespace or "/", event, data, custom_ok=self.custom_ok)
        self.emitted.append(Emitted(event, data, to, namespace or "/", skip_sid))

    async def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        self.sessions[(namespace or "/", sid)] = session

    async def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        return self.sessions.get((namespace or "/", sid), {})

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.rooms.setdefault((namespace or "/", room), set()).add(sid)

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.rooms.get((namespace or "/", room), set()).discard(sid)

    def get_participants(self, namespace: str, room: str) -> list[tuple[str, str]]:
        return [(sid, sid) for sid in sorted(self.rooms.get((namespace, room), set()))]

    # --- what the tests call ---------------------------------------------------------------------------------
    async def call(self, namespace: str, event: str, sid: str, data: Any = None) -> Any:
        """Deliver an event to its registered handler, as python-socketio would, and return the acknowledgement."""
        return await self.handlers[(namespace, event)](sid, data)

    def sent(self, event: str, namespace: str | None = None) -> list[Emitted]:
        return [e for e in self.emitted if e.event == event and (namespace is None or e.namespace == namespace)]

    def clear(self) -> None:
        self.emitted.clear()


@dataclass
class ScriptedBot:
    """The bot client's interface, answering from ``replies`` (Rasa's collected messages per turn, or an error)."""

    replies: list[list[dict[str, Any]] | Exception] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    down: bool = False

    async def send(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> BotTurn:
        self.sent.append((sender, text))
        if self.down:
            raise BotUnavailable()
        reply = self.replies.pop(0) if self.replies else [{"text": f"echo: {text}"}]
        if isinstance(reply, Exception):
            raise reply
        return BotTurn(messages=reply, parse={"intent": {"name": "scripted", "confidence": 1.0}})

    async def resume(self, sender: str) -> None:
        if self.down:
            raise BotUnavailable()
        self.resumed.append(sender)
