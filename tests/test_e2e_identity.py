"""Verified identity and allowed origins through the real relay (a relay process of its own on the stack's
database and Rasa, started with the identity and origin settings), with python-socketio clients and real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import socketio

from common.db import create_engine, session_factory
from handoff.identity import sign
from handoff.models import Conversation
from tests.browser import relay_for_origins
from tests.stack import Stack

pytestmark = pytest.mark.e2e

SECRET = "e2e-identity-secret"
SITE = "https://shop.example.com"


async def session_request(url: str, custom: dict, session_id: str | None = None) -> tuple[dict, list[dict]]:
    errors: list[dict] = []
    sio = socketio.AsyncClient()
    sio.on("relay_error", errors.append)
    await sio.connect(url, transports=["websocket"], headers={"Origin": SITE})
    try:
        ack = await sio.call("session_request", {"session_id": session_id, "customData": custom}, timeout=10)
    finally:
        await sio.disconnect()
    return ack, errors


async def record_of(stack: Stack, session_id: str) -> dict:
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s:
        chat = await s.get(Conversation, session_id)
    await engine.dispose()
    assert chat is not None
    return dict(chat.customer)


async def test_identity_verified_claimed_wrong_and_not_someone_elses_chat(stack: Stack) -> None:
    env = {"WARMLINE_IDENTITY_SECRET": SECRET}
    with relay_for_origins(stack, [SITE], env) as relay:
        signed = {"user_id": "u-77", "user_hash": sign(SECRET, "u-77"), "name": "Maya", "email": "maya@example.com"}
        ack, errors = await session_request(relay, signed)
        assert ack["ok"] and errors == []
        maya = ack["session_id"]
        assert await record_of(stack, maya) == {
            "user_id": "u-77",
            "name": "Maya",
            "email": "maya@example.com",
            "verified": True,
        }

        claimed = {"user_id": "u-77", "name": "Maya", "email": "maya@example.com"}  # no signature: a claim
        ack, _ = await session_request(relay, claimed)
        assert ack["ok"] and await record_of(stack, ack["session_id"]) == {
            "name": "Maya", "email": "maya@example.com", "verified": False,
        }  # fmt: skip

        ack, errors = await session_request(relay, {**signed, "user_hash": sign(SECRET, "u-78")})
        assert ack["ok"] is False and ack["error"]["code"] == "identity_invalid"
        assert [e["code"] for e in errors] == ["identity_invalid"]

        # Maya's chat id in another visitor's hands: refused, as an unsigned visitor and as another signed-in user.
        for other in (claimed, {"user_id": "u-99", "user_hash": sign(SECRET, "u-99")}):
            ack, _ = await session_request(relay, other, session_id=maya)
            assert ack["ok"] is False and ack["error"]["code"] == "wrong_session"
        ack, _ = await session_request(relay, signed, session_id=maya)
        assert ack["ok"] and ack["session_id"] == maya


async def test_identity_required(stack: Stack) -> None:
    env = {"WARMLINE_IDENTITY_SECRET": SECRET, "WARMLINE_IDENTITY_REQUIRED": "true"}
    with relay_for_origins(stack, [SITE], env) as relay:
        ack, errors = await session_request(relay, {"name": "Anon"})
        assert (
            ack["ok"] is False
            and ack["error"]["code"] == "identity_required"
            and errors[0]["code"] == "identity_required"
        )
        ack, _ = await session_request(relay, {"user_id": "u-5", "user_hash": sign(SECRET, "u-5")})
        assert ack["ok"]


async def test_a_site_that_is_not_allowed_is_refused_on_the_socket_and_the_api(stack: Stack) -> None:
    with relay_for_origins(stack, [SITE]) as relay:
        refused = socketio.AsyncClient(reconnection=False)
        why: list[object] = []
        refused.on("connect_error", why.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(relay, transports=["websocket"], headers={"Origin": "https://evil.example"})
        # python-socketio's client hands over the whole error packet; socket.io-client (the widget) gets .data
        assert why and isinstance(why[0], dict) and (why[0].get("data") or why[0])["code"] == "origin_not_allowed", why
        for namespace in ("/agent",):
            other = socketio.AsyncClient(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await other.connect(
                    relay, namespaces=[namespace], transports=["websocket"], headers={"Origin": "https://evil.example"}
                )

        def login(origin: str) -> tuple[int, dict]:
            request = urllib.request.Request(
                relay + "/api/agent/login", data=json.dumps({"username": "x", "password": "y"}).encode(),
                headers={"Content-Type": "application/json", "Origin": origin}, method="POST",
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, body = login("https://evil.example")
        assert status == 403 and body["error"]["code"] == "origin_not_allowed"
        assert login(SITE)[1]["error"]["code"] == "bad_credentials"  # allowed through to the login itself
        assert login(relay)[1]["error"]["code"] == "bad_credentials"  # the relay's own pages
        allowed = socketio.AsyncClient(reconnection=False)
        await allowed.connect(relay, transports=["websocket"], headers={"Origin": SITE})
        await allowed.disconnect()
