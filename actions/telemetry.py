"""The action server's own figures on its own ``GET /metrics`` (``common.metrics``: only with the metrics token):
how long the bot's deflection decision takes on each customer message, the figure behind "decision p99 under 20 ms
with 50 customers chatting" (docs/benchmarks.md, bench/decision_load.py)."""

from __future__ import annotations

from prometheus_client import Histogram
from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from common import metrics as served
from common.settings import Settings

# Seconds, finest around the 20 ms target: the encoder's pass is most of a decision.
DECISION_BUCKETS = (0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.05, 0.1, 0.25, 1.0)
DECISION_SECONDS = Histogram(
    "warmline_kb_decision_seconds",
    "The bot's answer / offer choices / hand over decision on one customer message: encoding, scoring, thresholds",
    buckets=DECISION_BUCKETS,
)


def decision(seconds: float) -> None:
    DECISION_SECONDS.observe(seconds)


def register(app: Sanic, settings: Settings) -> None:
    """``GET /metrics`` on the action server's Sanic app (``warmline actions``)."""

    async def handler(request: Request) -> HTTPResponse:
        return served.serve(request, settings.metrics_token)

    app.add_route(handler, "/metrics", methods=["GET"], name="metrics")
