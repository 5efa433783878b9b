"""The relay's connection to the Rasa bot, over HTTP to the ``bot.channel.WarmlineInput`` webhook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from common.errors import BotUnavailable
from handoff.conversation import RESUME_EVENTS


@dataclass(frozen=True)
class BotTurn:
    """The bot's replies to one customer message, and how it read that message."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    parse: dict[str, Any] | None = None


class Bot(Protocol):
    """What the relay needs of the bot (``BotClient`` over HTTP; a scripted fake in the handler tests)."""

    async def send(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> BotTurn: ...

    async def resume(self, sender: str) -> None: ...


class BotClient:
    def __init__(self, rasa_url: str, timeout_s: float) -> None:
        self._rasa_url = rasa_url.rstrip("/")
        self._url = self._rasa_url + "/webhooks/warmline/webhook"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # One pooled session for the process: a new TCP connection per turn would cost more than the relay's budget.
        self._http = aiohttp.ClientSession(
            timeout=self._timeout, connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=60)
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> BotTurn:
        if self._http is None:
            raise RuntimeError("BotClient.start() was not called")
        body = {"sender": sender, "message": text, "metadata": metadata or {}}
        try:
            async with self._http.post(self._url, json=body) as response:
                if response.status != 200:
                    raise BotUnavailable()
                reply = await response.json()
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise BotUnavailable() from exc
        return BotTurn(messages=list(reply.get("messages") or []), parse=reply.get("parse"))

    async def resume(self, sender: str) -> None:
        """Un-pause the conversation in Rasa after the human phase (idempotent: resuming twice is harmless; why
        these events: ``handoff.conversation.RESUME_EVENTS``)."""
        if self._http is None:
            raise RuntimeError("BotClient.start() was not called")
        url = f"{self._rasa_url}/conversations/{sender}/tracker/events"
        try:
            async with self._http.post(url, json=RESUME_EVENTS) as response:
                if response.status != 200:
                    raise BotUnavailable()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BotUnavailable() from exc
