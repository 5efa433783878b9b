"""The KB editor over its real REST API, and "ask the bot until it gives this answer" (tests and bench/kb_publish.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from common.db import create_engine, session_factory
from handoff.auth import create_agent
from tests.chat_client import Customer


async def make_agent(db_url: str, username: str, password: str, role: str) -> None:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s, s.begin():
            await create_agent(s, username, username.title(), password, role=role)
    finally:
        await engine.dispose()


class Editor:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    @classmethod
    async def login(cls, url: str, username: str, password: str) -> Editor:
        editor = cls(url)
        status, body = await editor.call(
            "POST", "/api/agent/login", {"username": username, "password": password}, auth=False
        )
        assert status == 200, body
        editor.token = body["token"]
        return editor

    async def call(
        self, method: str, path: str, json: dict[str, Any] | None = None, auth: bool = True, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {}
        if auth and (token or self.token):
            headers["Authorization"] = f"Bearer {token or self.token}"
        async with aiohttp.ClientSession() as http:
            async with http.request(method, self.url + path, json=json, headers=headers) as r:
                if r.content_type == "application/json":
                    return r.status, await r.json()
                return r.status, await r.text()

    async def ok(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        status, body = await self.call(method, path, json)
        assert 200 <= status < 300, (status, body)
        return body


async def ask_once(relay_url: str, question: str) -> dict[str, Any]:
    """One question in a fresh conversation (so earlier unsure turns never escalate this one)."""
    customer = Customer(relay_url)
    await customer.connect()
    try:
        return await customer.ask(question)
    finally:
        await customer.close()


async def seconds_until_answer(
    relay_url: str, question: str, answer: str, since: float, limit_s: float = 30.0
) -> float:
    """Ask again and again until the bot replies with ``answer``; seconds from ``since`` (monotonic) to that reply."""
    last: dict[str, Any] = {}
    while time.monotonic() - since < limit_s:
        last = await ask_once(relay_url, question)
        if last.get("text") == answer:
            return time.monotonic() - since
        await asyncio.sleep(0.2)
    raise AssertionError(f"no answer {answer!r} within {limit_s} s; last reply {last!r}")
