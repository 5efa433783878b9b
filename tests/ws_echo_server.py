"""A Sanic + python-socketio server with the relay's websocket receive path (handoff/ws_transport.py), for
tests/test_ws_transport.py: it acknowledges ``echo`` with its argument and keeps the order messages arrived in.

    python tests/ws_echo_server.py PORT [PING_INTERVAL_S]
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import socketio
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.server.websockets.impl import WebsocketImplProtocol

from handoff import ws_transport

MAX_SIZE = 64 * 1024


def create_app(ping_interval_s: float = 25) -> Sanic:
    ws_transport.install()
    app = Sanic("ws_echo")
    app.config.update({"ACCESS_LOG": False, "WEBSOCKET_MAX_SIZE": MAX_SIZE})
    sio = socketio.AsyncServer(
        async_mode="sanic", max_http_buffer_size=MAX_SIZE, ping_interval=ping_interval_s, ping_timeout=ping_interval_s
    )
    sio.attach(app)
    arrived: list[Any] = []
    disconnects: list[str] = []

    @sio.on("echo")
    async def echo(_sid: str, data: Any) -> Any:
        arrived.append(data)
        return data

    @sio.on("flood")
    async def flood(sid: str, count: int) -> int:
        for n in range(count):  # queued on the socket faster than its writer sends: written several at a time
            await sio.emit("flooded", n, to=sid)
        return count

    @sio.on("connections_held")
    async def connections_held(_sid: str, _data: Any = None) -> int:
        """Websocket connections this process still holds, open or closed (closed ones should go at once)."""
        gc.collect()
        return sum(isinstance(o, WebsocketImplProtocol) for o in gc.get_objects())

    @sio.on("arrived")
    async def arrived_so_far(_sid: str, _data: Any = None) -> dict[str, Any]:
        return {"arrived": arrived, "disconnects": len(disconnects)}

    @sio.on("disconnect")
    async def gone(sid: str, *_: Any) -> None:
        # Awaits first, as the relay's do (an agent's presence is written): Sanic cancels the connection's task
        # once the connection is lost, and the handler must still run to its end.
        await asyncio.sleep(0.3)
        disconnects.append(sid)

    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    app.add_route(health, "/health", methods=["GET"])
    return app


if __name__ == "__main__":
    ping = float(sys.argv[2]) if len(sys.argv) > 2 else 25
    create_app(ping).run(host="127.0.0.1", port=int(sys.argv[1]), single_process=True, access_log=False, motd=False)
