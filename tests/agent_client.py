"""An agent over the real REST login and the ``/agent`` Socket.IO namespace."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import socketio


async def login(url: str, username: str, password: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/agent/login", json={"username": username, "password": password}) as r:
            return r.status, await r.json()


class AgentClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, asyncio.Queue[Any]] = {}
        for name in (
            "ticket_waiting", "ticket_taken", "chat_message", "ticket_resolved", "relay_error",
            "ticket_offered", "chat_assigned", "ticket_transferred", "typing", "read",
        ):  # fmt: skip
            queue: asyncio.Queue[Any] = asyncio.Queue()
            self.events[name] = queue
            self.sio.on(name, queue.put, namespace="/agent")

    async def connect(self, token: str) -> dict[str, Any]:
        await self.sio.connect(self.url, namespaces=["/agent"], auth={"token": token}, transports=["websocket"])
        return await self.call("sync", {})

    async def call(self, event: str, data: Any) -> dict[str, Any]:
        return await self.sio.call(event, data, namespace="/agent", timeout=15)

    async def next(self, event: str, timeout: float = 10) -> Any:
        return await asyncio.wait_for(self.events[event].get(), timeout)

    async def wait_for_ticket(self, conversation_id: str, timeout: float = 15) -> dict[str, Any]:
        while True:
            ticket = await self.next("ticket_waiting", timeout)
            if ticket["conversation_id"] == conversation_id:
                return ticket

    async def close(self) -> None:
        await self.sio.disconnect()
