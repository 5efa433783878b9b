"""Logins and tokens (handoff/auth.py, handoff/api.py) and the security headers (handoff/security.py): sliding
expiry over a real SQLite file; logout, a password change and the headers through the real relay."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.db import create_engine, session_factory
from handoff.auth import agent_for_token, create_agent, login, slide, token_state
from handoff.models import AgentToken
from tests.stack import Stack
from warmline.migrate import upgrade


async def test_a_token_slides_while_used_and_expires_when_idle(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tokens.db'}"
    upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    idle = timedelta(hours=1)
    async with sessions() as s, s.begin():
        await create_agent(s, "ada", "Ada", "correct horse battery")
        _, token = await login(s, "ada", "correct horse battery", idle)
    async with sessions() as s, s.begin():  # 50 minutes later: still valid, and due to slide
        await s.execute(AgentToken.__table__.update().values(expires_at=datetime.now(UTC) + timedelta(minutes=10)))
    async with sessions() as s:
        agent, due = await token_state(s, token, idle)
        assert agent is not None and due
    await slide(sessions, token, idle)
    async with sessions() as s:
        agent, due = await token_state(s, token, idle)
        assert agent is not None and not due
        stored = (await s.execute(AgentToken.__table__.select())).one()
        assert stored.expires_at.replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(minutes=55)
    async with sessions() as s, s.begin():  # unused past its idle time: gone
        await s.execute(AgentToken.__table__.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    async with sessions() as s:
        assert await agent_for_token(s, token, idle) is None
    await engine.dispose()


def call(
    url: str, path: str, body: dict | None = None, token: str | None = None, method: str = "POST"
) -> tuple[int, dict, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


@pytest.mark.e2e
async def test_logout_and_a_new_password_end_logins(stack: Stack) -> None:
    engine = create_engine(stack.settings.db_url)
    async with session_factory(engine)() as s, s.begin():
        await create_agent(s, "tokens", "Toki", "first password 1")
    await engine.dispose()
    relay = stack.relay_url
    first = call(relay, "/api/agent/login", {"username": "tokens", "password": "first password 1"})[1]["token"]
    second = call(relay, "/api/agent/login", {"username": "tokens", "password": "first password 1"})[1]["token"]
    assert call(relay, "/api/kb/revision", token=first, method="GET")[0] == 403  # known, but not an editor
    status, body, _ = call(relay, "/api/admin/agents", token=first, method="GET")
    assert status == 403 and body["error"]["code"] == "forbidden"  # nor an admin
    assert call(relay, "/api/agent/logout", token=first)[0] == 200
    assert call(relay, "/api/kb/revision", token=first, method="GET")[0] == 401  # revoked at once
    status, body, _ = call(
        relay, "/api/agent/password", {"current_password": "wrong", "new_password": "x" * 12}, second
    )
    assert status == 401 and body["error"]["code"] == "bad_credentials"
    third = call(relay, "/api/agent/login", {"username": "tokens", "password": "first password 1"})[1]["token"]
    ok = call(
        relay,
        "/api/agent/password",
        {"current_password": "first password 1", "new_password": "second password 2"},
        second,
    )
    assert ok[0] == 200
    assert call(relay, "/api/kb/revision", token=third, method="GET")[0] == 401  # the other login ended
    assert call(relay, "/api/kb/revision", token=second, method="GET")[0] == 403  # this one goes on
    assert call(relay, "/api/agent/login", {"username": "tokens", "password": "first password 1"})[0] == 401
    assert call(relay, "/api/agent/login", {"username": "tokens", "password": "second password 2"})[0] == 200


@pytest.mark.e2e
def test_pages_and_apis_send_security_headers(stack: Stack) -> None:
    for path in ("/", "/agent", "/editor"):
        with urllib.request.urlopen(stack.relay_url + path, timeout=10) as response:
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
            assert "frame-ancestors 'none'" in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
            page = response.read().decode()
            assert "<script>" not in page and " onclick=" not in page  # no inline script for the policy to allow
    status, _, headers = call(stack.relay_url, "/api/agent/login", {"username": "", "password": ""})
    assert status == 400 and headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
