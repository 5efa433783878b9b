"""Prometheus telemetry and JSON logs (handoff/telemetry.py): the counters move, /metrics needs its token."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import REGISTRY
from sanic import Sanic

from common.errors import RelayError
from common.settings import Settings
from handoff import rest, telemetry


def value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_the_chat_path_functions_move_their_counters_and_histograms() -> None:
    before = value("warmline_messages_total", {"sender": "customer"})
    telemetry.message("customer")
    assert value("warmline_messages_total", {"sender": "customer"}) == before + 1

    turns, slow = value("warmline_bot_turns_total", {"outcome": "ok"}), value("warmline_bot_turn_seconds_count")
    telemetry.bot_turn(0.02)
    telemetry.bot_turn(3.0, ok=False)  # a failed turn counts, its time is not a bot turn's latency
    assert value("warmline_bot_turns_total", {"outcome": "ok"}) == turns + 1
    assert value("warmline_bot_turns_total", {"outcome": "error"}) >= 1
    assert value("warmline_bot_turn_seconds_count") == slow + 1
    assert value("warmline_bot_turn_seconds_bucket", {"le": "0.025"}) >= 1

    telemetry.escalation("customer_asked", 0.004)
    assert value("warmline_escalations_total", {"reason": "customer_asked"}) >= 1
    assert value("warmline_handoff_seconds_bucket", {"le": "0.005"}) >= 1
    telemetry.queue("accepted", "support")
    telemetry.queue("weird", None)
    assert value("warmline_queue_events_total", {"event": "accepted", "team": "support"}) >= 1
    assert value("warmline_queue_events_total", {"event": "other", "team": ""}) >= 1
    telemetry.queue_waiting("support", 3)
    assert value("warmline_queue_waiting", {"team": "support"}) == 3
    telemetry.seated("support", 42.0)
    assert value("warmline_seat_seconds_bucket", {"team": "support", "le": "60.0"}) >= 1
    telemetry.presence("away")
    telemetry.agents({"online": 2, "away": 1})
    assert value("warmline_agent_presence_changes_total", {"presence": "away"}) >= 1
    assert (value("warmline_agents", {"presence": "online"}), value("warmline_agents", {"presence": "offline"})) == (
        2,
        0,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[tuple[str, Sanic]]:
    """A real Sanic server with the telemetry blueprint, as the relay registers it (one per process: Sanic
    rewrites its request path once per process)."""
    app = Sanic("telemetry_test")
    app.ctx.settings = Settings(metrics_token="s3cret-token")
    app.exception(RelayError)(rest.on_error)
    app.blueprint(telemetry.metrics)
    port = free_port()
    running = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    assert running is not None
    await running.startup()
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await running.close()


async def test_metrics_need_the_token(server: tuple[str, Sanic]) -> None:
    url, app = server
    app.ctx.settings = Settings(metrics_token="s3cret-token")
    telemetry.message("bot")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/metrics") as r:
            assert r.status == 401
        async with http.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with http.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret-token"}) as r:
            assert r.status == 200
            assert r.headers["content-type"].startswith("text/plain")
            body = await r.text()
    assert 'warmline_messages_total{sender="bot"}' in body
    assert "# TYPE warmline_bot_turn_seconds histogram" in body


async def test_metrics_are_off_without_a_token(server: tuple[str, Sanic]) -> None:
    url, app = server
    app.ctx.settings = Settings(metrics_token=None)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/metrics", headers={"Authorization": "Bearer anything"}) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "not_found"


def test_json_log_lines() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("handoff.x", logging.ERROR, __file__, 1, "failed: %s", ("thing",), sys.exc_info())
    line = json.loads(telemetry.JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"]) == ("error", "handoff.x", "failed: thing")
    assert line["ts"].endswith("+00:00") and "ValueError: boom" in line["exc"]
