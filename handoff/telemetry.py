"""Operations telemetry: Prometheus counters and histograms of the chat path, ``GET /metrics``, JSON logs.

The chat path calls the small functions below (``telemetry.bot_turn(seconds)`` ...); each is a few dict look-ups
and an add, so they are cheap enough for every message. Every relay process keeps its own figures and serves them
on its own ``/metrics`` (``common.metrics``: only with the metrics token; the action server serves its own too).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse

from common import metrics as served

# Latency buckets in seconds: a bot turn is milliseconds to a few seconds (Rasa's timeout is 10 s).
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Waiting for a person is seconds to an hour.
SEAT_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

MESSAGES = Counter("warmline_messages", "Chat messages stored, by sender", ["sender"])
BOT_TURNS = Counter("warmline_bot_turns", "Customer messages the bot answered, by outcome", ["outcome"])
BOT_TURN_SECONDS = Histogram(
    "warmline_bot_turn_seconds", "Customer message received to the bot's reply sent", buckets=TURN_BUCKETS
)
ESCALATIONS = Counter("warmline_escalations", "Tickets opened, by reason", ["reason"])
HANDOFF_SECONDS = Histogram(
    "warmline_handoff_seconds",
    "An escalating customer message received to the ticket opened and the customer told their place",
    buckets=TURN_BUCKETS,
)
QUEUE_EVENTS = Counter("warmline_queue_events", "Ticket moves, by event and team", ["event", "team"])
QUEUE_WAITING = Gauge("warmline_queue_waiting", "Tickets waiting for an agent, by team", ["team"])
SEAT_SECONDS = Histogram(
    "warmline_seat_seconds", "Escalation to an agent joining the chat, by team", ["team"], buckets=SEAT_BUCKETS
)
PRESENCE_CHANGES = Counter("warmline_agent_presence_changes", "Agent presence changes, by new presence", ["presence"])
COPILOT_SUPERSEDED = Counter(
    "warmline_copilot_rankings_superseded",
    "Copilot rankings dropped unasked: a newer message of the same chat replaced them while they waited",
)
AGENTS = Gauge("warmline_agents", "Agents by presence (as last counted by this process)", ["presence"])

QUEUE_EVENT_NAMES = ("queued", "accepted", "transferred", "resolved")


def message(sender: str) -> None:
    """One chat message stored (customer, bot, agent, system, note)."""
    MESSAGES.labels(sender).inc()


def bot_turn(seconds: float, ok: bool = True) -> None:
    """One customer message in the bot phase: received to the reply emitted (or to the failure emitted)."""
    BOT_TURNS.labels("ok" if ok else "error").inc()
    if ok:
        BOT_TURN_SECONDS.observe(seconds)


def escalation(reason: str, seconds: float) -> None:
    """A new ticket: ``seconds`` from the escalating message received to the customer told their place."""
    ESCALATIONS.labels(reason).inc()
    HANDOFF_SECONDS.observe(seconds)


def queue(event: str, team: str | None) -> None:
    """A ticket queued, accepted, transferred or resolved."""
    QUEUE_EVENTS.labels(event if event in QUEUE_EVENT_NAMES else "other", team or "").inc()


def queue_waiting(team: str | None, waiting: int) -> None:
    QUEUE_WAITING.labels(team or "").set(waiting)


def seated(team: str | None, seconds: float) -> None:
    """An agent joined an escalated chat ``seconds`` after the escalation."""
    SEAT_SECONDS.labels(team or "").observe(seconds)


def presence(new_presence: str) -> None:
    PRESENCE_CHANGES.labels(new_presence).inc()


def agents(counts: dict[str, int]) -> None:
    """Agents per presence (online / away / offline), e.g. after a presence change or a queue refresh."""
    for name in ("online", "away", "offline"):
        AGENTS.labels(name).set(counts.get(name, 0))


metrics = Blueprint("metrics")


@metrics.get("/metrics")
async def metrics_endpoint(request: Request) -> HTTPResponse:
    return served.serve(request, request.app.ctx.settings.metrics_token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


LOGGERS = ("", "sanic.root", "sanic.error", "sanic.access", "sanic.server")


def use_json_logs() -> None:
    """Every handler of the root and Sanic's loggers writes JSON lines (a stderr handler is added if none)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JsonFormatter())


@metrics.before_server_start
async def _logs(app: object) -> None:
    if app.ctx.settings.json_logs:  # type: ignore[attr-defined]
        use_json_logs()
