"""``GET /metrics`` for every Warmline process (the relay, the action server): Prometheus's text format of this
process's figures, only with ``Authorization: Bearer <WARMLINE_METRICS_TOKEN>`` (compared in constant time); with
no token set it answers 404, so an install that never configured it exposes nothing. Each process serves its own
figures; Prometheus scrapes each and its ``sum()`` adds them up."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from common.errors import NotFound, RelayError, Unauthorized


def check(request: Request, token: str | None) -> None:
    """Raises NotFound (metrics off) or Unauthorized (a missing or wrong token)."""
    if not token:
        raise NotFound("Metrics are off: set WARMLINE_METRICS_TOKEN to serve them.")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise Unauthorized("Send Authorization: Bearer <WARMLINE_METRICS_TOKEN>.")


def serve(request: Request, token: str | None) -> HTTPResponse:
    """The response, or the error as ``{"error": {code, message}}`` (the shape of every Warmline REST error), for
    an app without the relay's error handler."""
    try:
        check(request, token)
    except RelayError as error:
        return response.json({"error": error.payload()}, status=error.status)
    return response.raw(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
