"""The reference for bench/load.py: a bare Sanic + python-socketio room relay, same stack as the relay, no work.

    .venv/bin/python bench/bare_relay.py PORT

It speaks the same events as Warmline's human phase so the same clients and the same traffic run against both:
the customer ("/") sends session_request (answered with session_confirm, the chat's room joined) and user_uttered
(acknowledged, relayed to the room as chat_message on "/agent"); the agent ("/agent") joins a chat's room with
join and sends agent_message (acknowledged, relayed to the room as bot_uttered on "/"). Nothing is stored, nothing
is checked: what python-socketio and Sanic cost alone.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from typing import Any

import socketio
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse


def create_app() -> Sanic:
    app = Sanic("bare_relay")
    app.config.update({"ACCESS_LOG": False, "KEEP_ALIVE_TIMEOUT": 75})
    sio = socketio.AsyncServer(async_mode="sanic", cors_allowed_origins="*")
    sio.attach(app)
    ids = itertools.count(1)

    @sio.on("session_request")
    async def session_request(sid: str, data: dict[str, Any]) -> None:
        room = (data or {}).get("session_id") or uuid.uuid4().hex
        await sio.enter_room(sid, room)
        await sio.emit("session_confirm", room, to=sid)

    @sio.on("user_uttered")
    async def user_uttered(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        message = {"id": next(ids), "sender": "customer", "text": data["message"], "client_id": data["client_id"]}
        await sio.emit("chat_message", {"ticket_id": 0, "message": message}, to=data["session_id"], namespace="/agent")
        return {"ok": True, "message_id": message["id"]}

    @sio.on("sync", namespace="/agent")
    async def sync(sid: str, _data: Any) -> dict[str, Any]:
        return {"ok": True, "queue": [], "chats": []}

    @sio.on("join", namespace="/agent")
    async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        await sio.enter_room(sid, data["room"], namespace="/agent")
        return {"ok": True}

    @sio.on("agent_message", namespace="/agent")
    async def agent_message(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        message_id = next(ids)
        uttered = {"text": data["text"], "metadata": {"sender": "agent", "message_id": message_id}}
        await sio.emit("bot_uttered", uttered, to=data["room"], namespace="/")
        return {"ok": True, "message_id": message_id}

    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    app.add_route(health, "/health", methods=["GET"])
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(sys.argv[1]), single_process=True, access_log=False)
