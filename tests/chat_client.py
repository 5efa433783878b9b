"""A customer chat over Socket.IO for the tests and benchmarks: python-socketio's real client, nothing mocked."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import socketio


class Customer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.session_id: str | None = None
        self.bot: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.history: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._confirmed: asyncio.Queue[str] = asyncio.Queue()
        self.sio.on("session_confirm", self._confirmed.put)
        self.bot_arrivals: list[float] = []  # perf_counter() as each bot_uttered arrived, for the benchmarks
        self.sio.on("bot_uttered", self._bot_uttered)
        self.sio.on("relay_error", self.errors.put)
        self.sio.on("history", self.history.put)
        # The human phase's extras (console issue): live queue status, "leave your email", typing, read receipts.
        self.extras: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        for name in ("queue_position", "email_request", "typing", "read", "rating_request"):
            self.extras[name] = asyncio.Queue()
            self.sio.on(name, self.extras[name].put)

    def _bot_uttered(self, data: dict[str, Any]) -> None:
        self.bot_arrivals.append(time.perf_counter())
        self.bot.put_nowait(data)

    async def connect(self, session_id: str | None = None, custom: dict[str, Any] | None = None) -> str:
        await self.sio.connect(self.url, transports=["websocket"])
        await self.sio.emit("session_request", {"session_id": session_id, "customData": custom or {}})
        self.session_id = await asyncio.wait_for(self._confirmed.get(), 10)
        return self.session_id

    async def say(self, text: str, client_id: str | None = None) -> dict[str, Any]:
        """Send a message; returns the relay's ack."""
        payload = {"message": text, "session_id": self.session_id, "client_id": client_id or uuid.uuid4().hex}
        return await self.sio.call("user_uttered", payload, timeout=30)

    async def turn(self, text: str) -> None:
        """One bot turn for the benchmarks' closed loops: send and wait for the ack, which the relay gives after the
        turn's replies went out; a refused message fails the run."""
        ack = await self.say(text)
        assert ack["ok"], ack

    async def next_reply(self, timeout: float = 15) -> dict[str, Any]:
        return await asyncio.wait_for(self.bot.get(), timeout)

    async def ask(self, text: str, timeout: float = 15) -> dict[str, Any]:
        """Say something and wait for the bot's first reply."""
        await self.say(text)
        return await self.next_reply(timeout)

    async def next_event(self, name: str, timeout: float = 10) -> dict[str, Any]:
        return await asyncio.wait_for(self.extras[name].get(), timeout)

    async def close(self) -> None:
        await self.sio.disconnect()
